package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/internal/peertest"
	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/cache"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// The cache behind a real peer server (internal/peertest): what a read,
// a warm-up and a Has do with the store, the single flight and the
// origin, over both transports.

const testToken = "unit-test-cluster-token"

type fixture struct {
	origin *peertest.Origin
	store  *blockstore.Store
	cache  *cache.Cache
	addr   string
	client *peer.Client
}

func newFixture(t testing.TB, objs map[string][]byte, mod func(*cache.Options)) *fixture {
	t.Helper()
	return newFixtureS(t, objs, mod, nil)
}

// newFixtureS is newFixture with the server's options adjusted too.
func newFixtureS(t testing.TB, objs map[string][]byte, mod func(*cache.Options), smod func(*peer.ServerOptions)) *fixture {
	t.Helper()
	pc := peertest.Start(t, peertest.Options{Nodes: 1, Token: testToken, Cache: mod, Server: smod, Grace: time.Second})
	for k, b := range objs {
		pc.Origin.Put(k, b)
	}
	n := pc.Nodes[0]
	return &fixture{origin: pc.Origin, store: n.Store, cache: n.Cache, addr: n.Addr, client: n.Client}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func key(id, size int) string { return fmt.Sprintf("chunks/0/%d/%d_0_%d", id/1000, id, size) }

func ctx10s(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialRaw(t *testing.T, addr string, opts ...grpc.DialOption) peerpb.PeerClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return peerpb.NewPeerClient(conn)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadSingleFlight(t *testing.T) {
	k := key(1, 1<<20)
	data := randBytes(1 << 20)
	f := newFixture(t, map[string][]byte{k: data}, nil)
	f.origin.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := f.client.Read(ctx10s(t), "models", k, 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 16 readers got an error or wrong bytes", bad.Load())
	}
	if n := f.origin.Count(k); n != 1 {
		t.Errorf("origin GETs = %d, want 1", n)
	}
	st := f.cache.Stats()
	if st.OriginFetches != 1 || st.DedupWaits != 15 || st.Misses != 16 {
		t.Errorf("stats = %+v; want 1 fetch, 15 dedup waits, 16 misses", st)
	}
	// Now it is a hit.
	_, info, err := f.client.Read(ctx10s(t), "uuid-1", k, 0, -1)
	if err != nil || info.Source != peerpb.Source_SOURCE_STORE {
		t.Errorf("second read: source %v, err %v; want the store", info.Source, err)
	}
}

func TestCallerCancelDoesNotCancelSharedFetch(t *testing.T) {
	k := key(2, 4096)
	data := randBytes(4096)
	f := newFixture(t, map[string][]byte{k: data}, nil)
	f.origin.SetDelay(300 * time.Millisecond)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := f.client.Read(short, "models", k, 0, -1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("short read: got %v, want DeadlineExceeded", err)
	}
	got, _, err := f.client.Read(ctx10s(t), "models", k, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second read: %v", err)
	}
	if n := f.origin.Count(k); n != 1 {
		t.Errorf("origin GETs = %d, want 1 (the abandoned fetch completes and is reused)", n)
	}
}

func TestReadErrors(t *testing.T) {
	k := key(3, 1000)
	f := newFixture(t, map[string][]byte{k: randBytes(1000), key(4, 1000): randBytes(999)}, nil)
	tests := []struct {
		name       string
		vol, key   string
		off, limit int64
		code       codes.Code
		msg        string
	}{
		{"unknown volume", "other", k, 0, -1, codes.NotFound, `unknown volume "other" (this node serves: models)`},
		{"empty volume", "", k, 0, -1, codes.InvalidArgument, "volume is required"},
		{"not a block key", "models", "meta/dump.json", 0, -1, codes.InvalidArgument, "not a juicefs data block key"},
		{"traversal", "models", "chunks/0/0/../../x", 0, -1, codes.InvalidArgument, "not a juicefs data block key"},
		{"negative offset", "models", k, -1, -1, codes.InvalidArgument, "bad range"},
		{"bad limit", "models", k, 0, -2, codes.InvalidArgument, "bad range"},
		{"offset past end", "models", k, 1001, -1, codes.OutOfRange, "beyond object"},
		{"origin missing", "models", key(5, 10), 0, -1, codes.Unavailable, "no such key"},
		{"short origin object", "models", key(4, 1000), 0, -1, codes.Unavailable, "origin returned 999 bytes for a block of 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.client.Read(ctx10s(t), tt.vol, tt.key, tt.off, tt.limit)
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v; want %v containing %q", err, tt.code, tt.msg)
			}
		})
	}
	if _, ok := f.store.Has(blockstore.Key{Volume: "uuid-1", Object: key(4, 1000)}); ok {
		t.Error("a short origin object was stored")
	}
}

func TestRanges(t *testing.T) {
	k := key(6, 3<<20)
	data := randBytes(3 << 20)
	f := newFixtureS(t, map[string][]byte{k: data}, nil, func(o *peer.ServerOptions) { o.ChunkSize = 100 << 10 })
	for _, r := range []struct{ off, limit int64 }{{0, -1}, {0, 1}, {5, 100}, {1 << 20, 1 << 20}, {3<<20 - 1, -1}, {3<<20 - 10, 100}, {0, 0}} {
		for pass := range 2 { // miss, then hit
			got, _, err := f.client.Read(ctx10s(t), "models", k, r.off, r.limit)
			end := int64(len(data))
			if r.limit >= 0 && r.off+r.limit < end {
				end = r.off + r.limit
			}
			if err != nil || !bytes.Equal(got, data[r.off:end]) {
				t.Errorf("pass %d range %+v: %d bytes, err %v", pass, r, len(got), err)
			}
		}
	}
}

func TestS2OnlyForCompressibleBlocks(t *testing.T) {
	text := bytes.Repeat([]byte("config: {\"layers\": 32, \"heads\": 32}\n"), 30000)[:1<<20]
	weights := randBytes(1 << 20)
	kt, kw := key(8, len(text)), key(9, len(weights))
	f := newFixture(t, map[string][]byte{kt: text, kw: weights}, nil)
	for pass := range 2 {
		got, info, err := f.client.Read(ctx10s(t), "models", kt, 0, -1)
		if err != nil || !bytes.Equal(got, text) || info.WireBytes >= int64(len(text))/2 {
			t.Errorf("pass %d text: %d wire bytes for %d, err %v; want s2", pass, info.WireBytes, len(text), err)
		}
		got, info, err = f.client.Read(ctx10s(t), "models", kw, 0, -1)
		if err != nil || !bytes.Equal(got, weights) || info.WireBytes != int64(len(weights)) {
			t.Errorf("pass %d weights: %d wire bytes for %d, err %v; want raw", pass, info.WireBytes, len(weights), err)
		}
	}
	// A client that does not accept s2 gets raw bytes.
	c, err := peer.Dial(f.addr, peer.ClientOptions{Token: []byte(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, info, err := c.Read(ctx10s(t), "models", kt, 0, -1); err != nil || info.WireBytes != int64(len(text)) {
		t.Errorf("no s2: %d wire bytes, err %v", info.WireBytes, err)
	}
}

func TestWarmAndHas(t *testing.T) {
	objs := map[string][]byte{}
	var keys []string
	for i := range 10 {
		k := key(100+i, 5000)
		objs[k], keys = randBytes(5000), append(keys, k)
	}
	f := newFixture(t, objs, func(o *cache.Options) { o.OriginConcurrency = 3 })
	sizes, err := f.client.Has(ctx10s(t), "models", keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sizes {
		if s != -1 {
			t.Errorf("cold key %d has size %d", i, s)
		}
	}
	res, err := f.client.Warm(ctx10s(t), "models", append(keys[:5:5], key(999, 10)))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:5] {
		if r.State != peerpb.WarmResult_STATE_FETCHED || r.Size != 5000 || r.Key != keys[i] {
			t.Errorf("warm %d: %+v", i, r)
		}
	}
	if res[5].State != peerpb.WarmResult_STATE_FAILED || !strings.Contains(res[5].Error, "no such key") {
		t.Errorf("warm of a missing key: %+v", res[5])
	}
	res, err = f.client.Warm(ctx10s(t), "models", keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := peerpb.WarmResult_STATE_FETCHED
		if i < 5 {
			want = peerpb.WarmResult_STATE_CACHED
		}
		if r.State != want {
			t.Errorf("second warm %d: %v, want %v", i, r.State, want)
		}
	}
	for _, k := range keys {
		if f.origin.Count(k) != 1 {
			t.Errorf("%s fetched %d times", k, f.origin.Count(k))
		}
	}
	if _, err := f.client.Warm(ctx10s(t), "models", nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty warm: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	store, err := blockstore.Open(context.Background(), blockstore.Options{Dir: t.TempDir(), CapacityBytes: 1 << 20, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	vol := cache.Volume{Volume: peer.Volume{Name: "a", UUID: "u"}, Origin: peertest.NewOrigin()}
	tests := []struct {
		name string
		o    cache.Options
		msg  string
	}{
		{"no store", cache.Options{Volumes: []cache.Volume{vol}}, "store is required"},
		{"no volumes", cache.Options{Store: store}, "at least one volume"},
		{"duplicate volume", cache.Options{Store: store, Volumes: []cache.Volume{vol, vol}}, "configured twice"},
		{"volume without origin", cache.Options{Store: store, Volumes: []cache.Volume{{Volume: peer.Volume{Name: "a", UUID: "u"}}}}, "needs a name, a uuid and an origin"},
		{"negative bandwidth", cache.Options{Store: store, Volumes: []cache.Volume{vol}, OriginBandwidth: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		if _, err := cache.New(tt.o); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.msg)
		}
	}
	o := cache.Options{Store: store, Volumes: []cache.Volume{vol}}
	o.EnsureDefaults()
	once := o
	o.EnsureDefaults()
	if o.OriginConcurrency != cache.DefaultOriginConcurrency || o.FetchTimeout != cache.DefaultFetchTimeout || o.ReadChunkSize != once.ReadChunkSize || o.Clock == nil {
		t.Errorf("defaults: %+v", o)
	}
}

// TestHostileRanges reads uncached and cached blocks with ranges whose
// end overflows int64, negative ranges and offsets at and past the end,
// over both transports: each answers with a status, never a panic, and
// offset == size answers the same on a miss and on a hit.
func TestHostileRanges(t *testing.T) {
	const size = 1 << 20
	data := randBytes(size)
	ranges := []struct {
		name       string
		off, limit int64
		code       codes.Code
		n          int
	}{
		{"overflowing end", 1, math.MaxInt64, codes.OK, size - 1},
		{"max offset, max limit", math.MaxInt64, math.MaxInt64, codes.OutOfRange, 0},
		{"offset at the end", size, 10, codes.OK, 0},
		{"offset at the end, to the end", size, -1, codes.OK, 0},
		{"offset past the end", size + 1, 1, codes.OutOfRange, 0},
		{"negative offset", -1, 10, codes.InvalidArgument, 0},
		{"min offset", math.MinInt64, math.MaxInt64, codes.InvalidArgument, 0},
		{"limit below -1", 0, -2, codes.InvalidArgument, 0},
		{"min limit", 0, math.MinInt64, codes.InvalidArgument, 0},
	}
	for _, transport := range []string{"data plane", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			objs := map[string][]byte{}
			for i := range ranges {
				objs[key(100+i, size)] = data
			}
			f := newFixture(t, objs, nil)
			c := f.client
			if transport == "grpc" {
				gc, err := peer.Dial(f.addr, peer.ClientOptions{Token: []byte(testToken), GRPCReads: true})
				if err != nil {
					t.Fatal(err)
				}
				defer gc.Close()
				c = gc
			}
			for i, r := range ranges {
				k := key(100+i, size)
				for _, state := range []string{"miss", "hit"} {
					got, _, err := c.Read(ctx10s(t), "models", k, r.off, r.limit)
					if status.Code(err) != r.code || len(got) != r.n {
						t.Errorf("%s, %s (%d, %d): %d bytes, %v; want %d bytes, %v", r.name, state, r.off, r.limit, len(got), err, r.n, r.code)
					}
					if r.code == codes.OK && string(got) != string(data[int(r.off):int(r.off)+r.n]) {
						t.Errorf("%s, %s: wrong bytes", r.name, state)
					}
					// Make the next read a hit.
					if _, _, err := c.Read(ctx10s(t), "models", k, 0, -1); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestWarmFloodBounded: one caller's flood of Warm calls for keys the
// origin does not have is bounded: calls beyond the per-host limit wait
// or are refused, the fetch goroutines stay within the warm-work cap, and
// the origin failures are logged at most once per volume and interval.
func TestWarmFloodBounded(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, nil, func(o *cache.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	// Fetches that take 2 s and fail: calls stay running, so all 128 are
	// in at once even under -race.
	f.origin.SetDelay(2 * time.Second)
	keys := make([]string, peer.MaxBatch)
	for i := range keys {
		keys[i] = key(i+1, 1000)
	}
	c := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(peer.TokenCredentials([]byte(testToken))))
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
	// The calls run for 5 s as before, and longer on a loaded machine until
	// every call has arrived (the expected ones are refused), at most 30 s.
	want := int64(128 - 2*peer.DefaultMaxBatchCallsPerHost)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var refused atomic.Int64
	allRefused := make(chan struct{}) // closed when the want-th call is refused
	start := time.Now()
	go func() {
		select {
		case <-allRefused:
		case <-ctx.Done(): // the 30 s deadline
		}
		t := time.NewTimer(max(5*time.Second-time.Since(start), 0))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		cancel()
	}()
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Warm(ctx, &peerpb.WarmRequest{Volume: "models", Keys: keys}); status.Code(err) == codes.ResourceExhausted {
				if refused.Add(1) == want {
					close(allRefused)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	// 128 client goroutines and their streams come on top of the server's.
	lines := strings.Count(logs.String(), "origin fetch failed")
	t.Logf("128 Warm calls of %d missing keys: %d refused, peak %d goroutines over baseline, %d origin fetches, %d origin-failure log lines",
		peer.MaxBatch, refused.Load(), peak.Load(), f.cache.Stats().OriginFetches, lines)
	// 16 run and 16 wait (MaxBatchCallsPerHost); the rest are refused.
	if refused.Load() != want {
		t.Errorf("%d calls refused, want %d", refused.Load(), want)
	}
	if p := peak.Load(); p > 1000 {
		t.Errorf("peak %d goroutines over baseline, want < 1000", p)
	}
	if lines > 2 {
		t.Errorf("%d origin-failure log lines, want at most 2", lines)
	}
}

type gatedOrigin struct {
	objs  map[string][]byte
	gated map[string]bool
	gate  chan struct{}

	mu                 sync.Mutex
	inflight, maxGated int
	gatedNow           int
	gets               map[string]int
	changed            chan struct{} // closed when gatedNow grows; nil until changes asks
}

func (o *gatedOrigin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	if o.gated[key] {
		o.gatedNow++
		o.maxGated = max(o.maxGated, o.gatedNow)
		if o.changed != nil {
			close(o.changed)
			o.changed = nil
		}
	}
	o.mu.Unlock()
	if o.gated[key] {
		select {
		case <-o.gate:
		case <-ctx.Done():
		}
		o.mu.Lock()
		o.gatedNow--
		o.mu.Unlock()
	}
	b, ok := o.objs[key]
	if !ok {
		return nil, errors.New("no such key")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// changes returns a channel closed the next time a gated GET arrives. Get
// it before checking state.
func (o *gatedOrigin) changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.changed
}

func (o *gatedOrigin) state() (gatedNow, maxGated int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gatedNow, o.maxGated
}

// TestWarmDoesNotStarveReads: with warm-ups filling every warm slot of a
// node on a stalled origin, reads of other blocks are still served, and a
// read of a block a warm-up has queued is served ahead of the warm-up.
func TestWarmDoesNotStarveReads(t *testing.T) {
	origin := &gatedOrigin{objs: map[string][]byte{}, gated: map[string]bool{}, gate: make(chan struct{}), gets: map[string]int{}}
	var warm1, warm2 []string
	for i := range 12 {
		k := key(500+i, 4096)
		origin.objs[k], origin.gated[k] = randBytes(4096), true
		warm1 = append(warm1, k)
	}
	for i := range 6 {
		k := key(600+i, 4096)
		origin.objs[k] = randBytes(4096) // not gated: a stall only of warm1's keys
		warm2 = append(warm2, k)
	}
	readKey := key(700, 4096)
	origin.objs[readKey] = randBytes(4096)
	f := newFixture(t, nil, func(o *cache.Options) {
		o.OriginConcurrency = 4
		o.Volumes[0].Origin = origin
	})

	type warmDone struct {
		res []*peerpb.WarmResult
		err error
	}
	warm := func(keys []string) chan warmDone {
		c := make(chan warmDone, 1)
		go func() {
			res, err := f.client.Warm(ctx10s(t), "models", keys)
			c <- warmDone{res, err}
		}()
		return c
	}
	w1 := warm(warm1)
	// The first warm-up takes every warm slot (3 of 4) and stalls there.
	waitUntil(t, origin.changes, func() bool {
		n, _ := origin.state()
		return n == cache.WarmSlots(4)
	}, "the warm-up never filled the warm slots")
	w2 := warm(warm2)
	// The second warm-up's fetches queue for a warm slot.
	waitUntil(t, func() <-chan struct{} { return cache.SlotsChanged(f.cache) }, func() bool {
		_, w := cache.SlotWaiters(f.cache)
		return w == cache.WarmSlots(4)
	}, "the second warm-up's fetches never queued")
	if _, maxGated := origin.state(); maxGated != cache.WarmSlots(4) {
		t.Errorf("warm fetches in flight peaked at %d, want the cap %d", maxGated, cache.WarmSlots(4))
	}

	// A read of another block gets the reserved slot at once.
	got, info, err := f.client.Read(ctx10s(t), "models", readKey, 0, -1)
	if err != nil || !bytes.Equal(got, origin.objs[readKey]) || info.Source != peerpb.Source_SOURCE_ORIGIN {
		t.Fatalf("read during a stalled warm-up: source %v, err %v", info.Source, err)
	}
	// A read of a block the second warm-up has queued lifts that fetch
	// ahead of the queued warm fetches.
	got, _, err = f.client.Read(ctx10s(t), "models", warm2[0], 0, -1)
	if err != nil || !bytes.Equal(got, origin.objs[warm2[0]]) {
		t.Fatalf("read of a block queued by a warm-up: %v", err)
	}
	select {
	case d := <-w2:
		t.Fatalf("second warm-up finished while every warm slot was stalled: %v", d.err)
	default:
	}

	close(origin.gate)
	for _, c := range []chan warmDone{w1, w2} {
		d := <-c
		if d.err != nil {
			t.Fatal(d.err)
		}
		for _, r := range d.res {
			if r.State == peerpb.WarmResult_STATE_FAILED {
				t.Errorf("warm of %s failed: %s", r.Key, r.Error)
			}
		}
	}
	origin.mu.Lock()
	defer origin.mu.Unlock()
	for k, n := range origin.gets {
		if n != 1 {
			t.Errorf("origin GETs of %s = %d, want 1", k, n)
		}
	}
	if free, warm := cache.SlotsHeld(f.cache); free != 4 || warm != 0 {
		t.Errorf("slots after the warm-ups: free %d, warm %d", free, warm)
	}
}

// waitUntil waits until cond holds, checking it again each time the channel
// from changes is closed (changes is called before each check, so no change
// is missed); it fails the test with msg after 5 s.
func waitUntil(t *testing.T, changes func() <-chan struct{}, cond func() bool, msg string) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		changed := changes()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatal(msg)
		}
	}
}
