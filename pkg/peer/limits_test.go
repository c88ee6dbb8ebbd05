package peer

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// TestDataPlaneSlowReaderBounded: a client that pipelines reads with a
// deadline of MaxInt64 and never reads the answers loses its connection
// after MaxWriteTimeout, and gives back its share of the answer budget.
func TestDataPlaneSlowReaderBounded(t *testing.T) {
	k := key(1, 4<<20)
	f := newFixture(t, map[string][]byte{k: randBytes(4 << 20)}, func(o *ServerOptions) {
		o.Limits.MaxWriteTimeout = 300 * time.Millisecond
		o.Limits.MaxAnswerBytes = maxAnswerSize
	})
	if _, _, err := f.client.Read(ctx10s(t), "models", k, 0, -1); err != nil {
		t.Fatal(err)
	}
	f.client.Close() // its idle connection would count below
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitOpen(ctx, t, f.srv.dataConns, 0)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	hello := append([]byte(dataMagic), 0, byte(len(testToken)))
	c.Write(append(hello, testToken...))
	for range 8 {
		c.Write(appendDataRequest(nil, dataRequest{volume: "models", key: k, limit: -1, deadlineNanos: math.MaxInt64}))
	}
	// The slow connection is served, then lost; the server gives its
	// answer's bytes back before its connection slot.
	waitOpen(ctx, t, f.srv.dataConns, 1)
	waitOpen(ctx, t, f.srv.dataConns, 0)
	f.srv.answers.mu.Lock()
	free := f.srv.answers.free
	f.srv.answers.mu.Unlock()
	if free != maxAnswerSize {
		t.Fatalf("after the connection closed: %d of %d budget bytes free", free, maxAnswerSize)
	}
	// The node still serves.
	cl, err := Dial(f.addr, ClientOptions{Token: []byte(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, _, err := cl.Read(ctx10s(t), "models", k, 0, -1); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCReadFarDeadlineRefused: a gRPC Read whose deadline is beyond
// MaxCallTimeout is refused, since its blocked sends would wait for it.
func TestGRPCReadFarDeadlineRefused(t *testing.T) {
	k := key(1, 1000)
	f := newFixture(t, map[string][]byte{k: randBytes(1000)}, nil)
	c, err := Dial(f.addr, ClientOptions{Token: []byte(testToken), GRPCReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultMaxCallTimeout+time.Hour)
	defer cancel()
	if _, _, err := c.Read(ctx, "models", k, 0, -1); status.Code(err) != codes.InvalidArgument {
		t.Errorf("far deadline: %v, want InvalidArgument", err)
	}
	if _, _, err := c.Read(ctx10s(t), "models", k, 0, -1); err != nil {
		t.Errorf("10 s deadline: %v", err)
	}
}

// TestByteBudget: first come, first served, a waiter that gives up
// leaves, and a request larger than the budget takes all of it.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(10, 10)
	r1, _ := b.acquire(context.Background(), 6)
	got := make(chan int, 3)
	go func() { r, _ := b.acquire(context.Background(), 6); got <- 2; r() }()
	waitWaiters(t, b, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if _, err := b.acquire(ctx, 1); err == nil {
			t.Error("cancelled waiter was granted")
		}
		got <- 3
	}()
	waitWaiters(t, b, 2)
	cancel()
	if n := <-got; n != 3 {
		t.Fatalf("got %d first", n)
	}
	r1()
	if n := <-got; n != 2 {
		t.Fatalf("got %d", n)
	}
	rAll, err := b.acquire(context.Background(), 1<<40)
	if err != nil || b.free != 0 {
		t.Fatalf("oversized request: free %d, %v", b.free, err)
	}
	rAll()
	rAll() // idempotent
	if b.free != 10 {
		t.Fatalf("free %d after release", b.free)
	}
}

func waitWaiters(t *testing.T, b *byteBudget, n int) {
	t.Helper()
	waitBudget(t, b, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiters) == n
	}, func() string {
		b.mu.Lock()
		defer b.mu.Unlock()
		return fmt.Sprintf("%d waiters, want %d", len(b.waiters), n)
	})
}

// waitBudget waits until cond holds, checking it again at each change of
// b (the change channel is taken before each check, so none is missed);
// after timeout it fails the test with msg().
func waitBudget(t *testing.T, b *byteBudget, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := b.changes()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatal(msg())
		}
	}
}

// TestOversizedHeadersRefused: headers beyond maxHeaderListSize are
// refused before anything else is done with the call.
func TestOversizedHeadersRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken))))
	ctx := metadata.AppendToOutgoingContext(ctx10s(t), "padding", strings.Repeat("x", 64<<10))
	if _, err := c.Status(ctx, &peerpb.StatusRequest{}); err == nil {
		t.Error("a call with 64 KiB of headers was served")
	}
	if _, err := c.Status(ctx10s(t), &peerpb.StatusRequest{}); err != nil {
		t.Errorf("normal call: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	var l Limits
	l.EnsureDefaults()
	if err := l.Validate(); err != nil || l.MaxConns != DefaultMaxConns || l.MaxAnswerBytes != DefaultMaxAnswerBytes || l.MaxWriteTimeout != DefaultMaxWriteTimeout {
		t.Errorf("defaults: %+v, %v", l, err)
	}
	for _, bad := range []Limits{{MaxConns: -1}, {MaxAnswerBytes: 1 << 20}, {MaxWriteTimeout: -time.Second}} {
		if bad.EnsureDefaults(); bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
