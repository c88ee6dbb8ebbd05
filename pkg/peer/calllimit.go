package peer

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/admit"
)

// callLimit bounds concurrent calls of one kind, node-wide and per remote
// host. A call over either waits for one to finish; as many may wait as
// may run, and a call beyond that is refused at once, so waiting calls
// (and the requests they hold) are bounded too.
type callLimit struct{ s *admit.Slots }

func newCallLimit(max, perHost int) *callLimit {
	return &callLimit{mustSlots(admit.SlotsOptions{
		Max: max, PerHost: perHost,
		MaxQueued: 2 * max, MaxQueuedPerHost: 2 * perHost, MaxWaiting: 2 * max,
	})}
}

var errTooManyCalls = status.Error(codes.ResourceExhausted, "too many concurrent calls from this host or to this node, retry later")

// acquire waits for room for a call from host and returns the function
// that ends it.
func (l *callLimit) acquire(ctx context.Context, host string) (func(), error) {
	release, err := l.s.Acquire(ctx, host)
	switch {
	case errors.Is(err, admit.ErrFull):
		return nil, errTooManyCalls
	case err != nil:
		return nil, status.FromContextError(err).Err()
	}
	return release, nil
}

// connLimit counts open connections, in total and per remote host, and
// refuses those over either limit.
type connLimit struct{ s *admit.Slots }

func newConnLimit(max, perHost int) *connLimit {
	return &connLimit{mustSlots(admit.SlotsOptions{Max: max, PerHost: perHost, MaxWaiting: -1})}
}

// acquire takes a slot for a connection from addr; release gives it back.
func (l *connLimit) acquire(addr net.Addr) (release func(), ok bool) {
	return l.s.TryAcquire(remoteHost(addr))
}

// mustSlots returns the Slots of o, whose limits Limits.Validate made
// positive.
func mustSlots(o admit.SlotsOptions) *admit.Slots {
	s, err := admit.NewSlots(o)
	if err != nil {
		panic(fmt.Sprintf("peer: %v", err))
	}
	return s
}

// callerHost is the remote host of the call of ctx ("" when unknown).
func callerHost(ctx context.Context) string {
	var addr net.Addr
	if p, ok := grpcpeer.FromContext(ctx); ok {
		addr = p.Addr
	}
	return remoteHost(addr)
}
