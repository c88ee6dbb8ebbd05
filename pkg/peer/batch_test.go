package peer

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// TestOversizedBatchRefusedBeforeDecode: a Has call with more than
// MaxBatch (empty) keys is refused before its keys are decoded, so a flood
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
