package peer

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/clock"
)

// A gRPC Send blocks while the client's flow-control window is full, until
// the stream's context ends; a client that stops receiving would hold its
// answer (and its share of the answer budget) until the call's deadline.
// The tap gives each stream a context the server can cancel, and send
// cancels it when one chunk makes no progress for MaxWriteTimeout.

type streamCancelKey struct{}

var errNoProgress = errors.New("reader made no progress")

// cancelableStream returns ctx (a new stream's, in the tap) with a cancel
// function stored in it for progressGuard.
func cancelableStream(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	return context.WithValue(ctx, streamCancelKey{}, cancel)
}

// progressGuard cancels the stream of ss when a chunk is not sent within
// d of its arm call. Streams not set up by the tap are not guarded.
type progressGuard struct {
	t clock.Timer
	d time.Duration
}

func newProgressGuard(c clock.Clock, ss grpc.ServerStream, d time.Duration) *progressGuard {
	cancel, ok := ss.Context().Value(streamCancelKey{}).(context.CancelCauseFunc)
	if !ok {
		return &progressGuard{}
	}
	t := c.AfterFunc(d, func() { cancel(errNoProgress) })
	t.Stop()
	return &progressGuard{t: t, d: d}
}

// arm starts the clock for the next chunk.
func (g *progressGuard) arm() {
	if g.t != nil {
		g.t.Reset(g.d)
	}
}

// stop ends the guard; err is what Send returned, turned into a
// DeadlineExceeded that says why when the guard cancelled the stream.
func (g *progressGuard) stop(ctx context.Context, err error) error {
	if g.t != nil {
		g.t.Stop()
	}
	if err != nil && errors.Is(context.Cause(ctx), errNoProgress) {
		return status.Errorf(codes.DeadlineExceeded, "reader took no chunk for %v", g.d)
	}
	return err
}
