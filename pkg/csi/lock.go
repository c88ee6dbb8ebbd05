package csi

import (
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// inflight holds the keys (volume IDs, or names for CreateVolume) that have
// an operation running. A second operation on a key gets Aborted, as the
// CSI spec asks: the CO retries it later.
type inflight struct {
	mu   sync.Mutex
	keys map[string]bool
}

// acquire marks key busy and returns its release, or Aborted if another
// operation holds it.
func (f *inflight) acquire(key, what string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]bool{}
	}
	if f.keys[key] {
		return nil, status.Errorf(codes.Aborted, "an operation on %s %q is already in flight", what, key)
	}
	f.keys[key] = true
	return func() {
		f.mu.Lock()
		delete(f.keys, key)
		f.mu.Unlock()
	}, nil
}
