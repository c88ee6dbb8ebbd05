package peer

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// TestOversizedBatchRefusedBeforeDecode: a Has call with more than
// maxBatch (empty) keys is refused before its keys are decoded, so a flood
// of them allocates little on the server; one over the message limit is
// refused by size.
func TestOversizedBatchRefusedBeforeDecode(t *testing.T) {
	f := newFixture(t, nil, nil)
	conns := make([]peerpb.PeerClient, 4)
	for i := range conns {
		conns[i] = dialRaw(t, f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken))))
	}
	big := &peerpb.HasRequest{Volume: "models", Keys: make([]string, 40000)} // 80 KB on the wire
	// gRPC turns a codec's error into Internal, keeping its message.
	if _, err := conns[0].Has(ctx10s(t), big); status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "want 1 to 4096 keys") {
		t.Fatalf("40000 keys: %v, want Internal saying want 1 to 4096 keys", err)
	}
	huge := &peerpb.HasRequest{Volume: "models", Keys: make([]string, 524280)} // ~1 MiB
	if _, err := conns[0].Has(ctx10s(t), huge); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("524280 keys: %v, want ResourceExhausted (message size)", err)
	}
	const rounds = 8
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for _, c := range conns {
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					c.Has(ctx10s(t), big)
				}
			}()
		}
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	calls := uint64(len(conns) * 16 * rounds)
	perCall := (after.TotalAlloc - before.TotalAlloc) / calls
	t.Logf("%d Has calls of 40000 keys: %d bytes allocated per call (client and server)", calls, perCall)
	// The client marshals 80 KB and the server reads it; decoding the
	// keys would add 640 KB of string headers per call, and growing the
	// slice as much again (3.5 MB per call measured before the count).
	if perCall > 1<<20 {
		t.Errorf("%d bytes allocated per refused call, want < 1 MiB", perCall)
	}
}

// TestWarmFloodBounded: one caller's flood of Warm calls for keys the
// origin does not have is bounded: calls beyond the per-host limit wait
// or are refused, the fetch goroutines stay within the warm-work cap, and
// the origin failures are logged at most once per volume and interval.
func TestWarmFloodBounded(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, nil, func(o *ServerOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	// Fetches that take 2 s and fail: calls stay running, so all 128 are
	// in at once even under -race.
	f.origin.delay = 2 * time.Second
	keys := make([]string, maxBatch)
	for i := range keys {
		keys[i] = key(i+1, 1000)
	}
	c := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken))))
	base := runtime.NumGoroutine()
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n := int64(runtime.NumGoroutine() - base); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Warm(ctx, &peerpb.WarmRequest{Volume: "models", Keys: keys}); status.Code(err) == codes.ResourceExhausted {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	// 128 client goroutines and their streams come on top of the server's.
	lines := strings.Count(logs.String(), "origin fetch failed")
	t.Logf("128 Warm calls of %d missing keys: %d refused, peak %d goroutines over baseline, %d origin fetches, %d origin-failure log lines",
		maxBatch, refused.Load(), peak.Load(), f.srv.Stats().OriginFetches, lines)
	// 16 run and 16 wait (MaxBatchCallsPerHost); the rest are refused.
	if want := int64(128 - 2*DefaultMaxBatchCallsPerHost); refused.Load() != want {
		t.Errorf("%d calls refused, want %d", refused.Load(), want)
	}
	if p := peak.Load(); p > 1000 {
		t.Errorf("peak %d goroutines over baseline, want < 1000", p)
	}
	if lines > 2 {
		t.Errorf("%d origin-failure log lines, want at most 2", lines)
	}
}
