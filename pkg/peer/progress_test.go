package peer

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// TestProgressGuardOnItsClock: an armed guard cancels the stream when its
// clock passes the timeout, not before, and says why.
func TestProgressGuardOnItsClock(t *testing.T) {
	fc := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ctx := cancelableStream(context.Background())
	g := newProgressGuard(fc, ctxStream{ctx: ctx}, 30*time.Second)
	g.arm()
	fc.Advance(29 * time.Second)
	if ctx.Err() != nil {
		t.Fatal("stream cancelled before the timeout")
	}
	g.arm() // a chunk went out: the clock starts again
	fc.Advance(29 * time.Second)
	if ctx.Err() != nil {
		t.Fatal("stream cancelled 29 s after the last chunk")
	}
	fc.Advance(time.Second)
	select {
	case <-ctx.Done():
	case <-ctx10s(t).Done():
		t.Fatal("stream not cancelled 30 s after the last chunk")
	}
	err := g.stop(ctx, errors.New("send failed"))
	if status.Code(err) != codes.DeadlineExceeded || status.Convert(err).Message() != "reader took no chunk for 30s" {
		t.Errorf("stop: %v", err)
	}
}
