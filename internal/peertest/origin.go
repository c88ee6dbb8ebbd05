package peertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Origin is a fake origin: objects in memory, GETs counted by key. Delay
// slows every GET (a caller that gives up stops waiting); Fail, if set,
// may fail the n-th GET (1-based) of a key.
type Origin struct {
	mu    sync.Mutex
	objs  map[string][]byte
	gets  map[string]int
	delay time.Duration
	fail  func(key string, n int) error
}

// NewOrigin returns an empty origin.
func NewOrigin() *Origin { return &Origin{objs: map[string][]byte{}, gets: map[string]int{}} }

// Put stores an object.
func (o *Origin) Put(key string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objs[key] = data
}

// Object returns the bytes of an object (nil if absent).
func (o *Origin) Object(key string) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.objs[key]
}

// SetDelay makes every later GET take d.
func (o *Origin) SetDelay(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delay = d
}

// SetFail makes later GETs fail where f returns an error.
func (o *Origin) SetFail(f func(key string, n int) error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = f
}

// Get implements cache.Origin.
func (o *Origin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	n, b, ok, delay, fail := o.gets[key], o.objs[key], o.objs[key] != nil, o.delay, o.fail
	o.mu.Unlock()
	if delay > 0 {
		// A slow object store, not a wait for an event.
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(key, n); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errors.New("no such key")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Count returns the GETs of key so far.
func (o *Origin) Count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

// Total returns the GETs of every key so far.
func (o *Origin) Total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.gets {
		n += c
	}
	return n
}

// Reset forgets the GETs counted so far.
func (o *Origin) Reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gets = map[string]int{}
}
