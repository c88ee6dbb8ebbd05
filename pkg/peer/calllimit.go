package peer

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callLimit bounds concurrent calls of one kind, node-wide and per remote
// host. A call over either waits for one to finish; as many may wait as
// may run, and a call beyond that is refused at once, so waiting calls
// (and the requests they hold) are bounded too.
type callLimit struct {
	max, perHost int

	mu      sync.Mutex
	running int
	byHost  map[string]int // running, per host
	total   int            // running and waiting
	queued  map[string]int // running and waiting, per host
	wake    chan struct{}  // closed (and replaced) when a call ends
}

func newCallLimit(max, perHost int) *callLimit {
	return &callLimit{max: max, perHost: perHost, byHost: map[string]int{}, queued: map[string]int{}, wake: make(chan struct{})}
}

var errTooManyCalls = status.Error(codes.ResourceExhausted, "too many concurrent calls from this host or to this node, retry later")

// acquire waits for room for a call from host and returns the function
// that ends it.
func (l *callLimit) acquire(ctx context.Context, host string) (func(), error) {
	l.mu.Lock()
	if l.total >= 2*l.max || l.queued[host] >= 2*l.perHost {
		l.mu.Unlock()
		return nil, errTooManyCalls
	}
	l.total++
	l.queued[host]++
	for l.running >= l.max || l.byHost[host] >= l.perHost {
		w := l.wake
		l.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			l.mu.Lock()
			l.leave(host)
			l.mu.Unlock()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		l.mu.Lock()
	}
	l.running++
	l.byHost[host]++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.running--
			if l.byHost[host]--; l.byHost[host] <= 0 {
				delete(l.byHost, host)
			}
			l.leave(host)
		})
	}, nil
}

// leave drops a running or waiting call and wakes the waiters. l.mu is
// held.
func (l *callLimit) leave(host string) {
	l.total--
	if l.queued[host]--; l.queued[host] <= 0 {
		delete(l.queued, host)
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// callerHost is the remote host of the call of ctx ("" when unknown).
func callerHost(ctx context.Context) string {
	var addr net.Addr
	if p, ok := grpcpeer.FromContext(ctx); ok {
		addr = p.Addr
	}
	return remoteHost(addr)
}
