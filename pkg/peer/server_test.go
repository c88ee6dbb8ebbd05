package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

const testToken = "unit-test-cluster-token"

// fakeOrigin serves objects from memory, counting GETs, optionally slowly.
type fakeOrigin struct {
	mu    sync.Mutex
	objs  map[string][]byte
	gets  map[string]int
	delay time.Duration
	fail  error
}

func (o *fakeOrigin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	b, ok := o.objs[key]
	delay, fail := o.delay, o.fail
	o.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail != nil {
		return nil, fail
	}
	if !ok {
		return nil, errors.New("no such key")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (o *fakeOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

type fixture struct {
	origin *fakeOrigin
	store  *blockstore.Store
	srv    *Server
	addr   string
	client *Client
}

func newFixture(t testing.TB, objs map[string][]byte, mod func(*ServerOptions)) *fixture {
	t.Helper()
	f := &fixture{origin: &fakeOrigin{objs: objs, gets: map[string]int{}}}
	var err error
	f.store, err = blockstore.Open(context.Background(), blockstore.Options{Dir: t.TempDir(), CapacityBytes: 1 << 30, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	o := ServerOptions{
		Store: f.store, Token: []byte(testToken),
		Volumes: []Volume{{Name: "models", UUID: "uuid-1", BlockSize: 4 << 20, ExactSize: true, Origin: f.origin}},
	}
	if mod != nil {
		mod(&o)
	}
	if f.srv, err = NewServer(o); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.srv.Serve(ctx, l, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if f.client, err = Dial(f.addr, ClientOptions{Token: []byte(testToken), AcceptS2: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.client.Close() })
	return f
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

func TestReadSingleFlight(t *testing.T) {
	k := key(1, 1<<20)
	data := randBytes(1 << 20)
	f := newFixture(t, map[string][]byte{k: data}, nil)
	f.origin.delay = 200 * time.Millisecond
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
	if n := f.origin.count(k); n != 1 {
		t.Errorf("origin GETs = %d, want 1", n)
	}
	st := f.srv.Stats()
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
	f.origin.delay = 300 * time.Millisecond
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := f.client.Read(short, "models", k, 0, -1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("short read: got %v, want DeadlineExceeded", err)
	}
	got, _, err := f.client.Read(ctx10s(t), "models", k, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second read: %v", err)
	}
	if n := f.origin.count(k); n != 1 {
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
	f := newFixture(t, map[string][]byte{k: data}, func(o *ServerOptions) { o.ChunkSize = 100 << 10 })
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

func TestAuthAndDeadline(t *testing.T) {
	k := key(7, 100)
	f := newFixture(t, map[string][]byte{k: randBytes(100)}, nil)
	call := func(opts ...grpc.DialOption) (*peerpb.ReadChunk, error) {
		conn, err := grpc.NewClient(f.addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		s, err := peerpb.NewPeerClient(conn).Read(ctx10s(t), &peerpb.ReadRequest{Volume: "models", Key: k, Limit: -1})
		if err != nil {
			return nil, err
		}
		return s.Recv()
	}
	if c, err := call(); status.Code(err) != codes.Unauthenticated || c != nil {
		t.Errorf("no token: %v", err)
	}
	if c, err := call(grpc.WithPerRPCCredentials(TokenCredentials([]byte("wrong-token-wrong-token")))); status.Code(err) != codes.Unauthenticated || c != nil {
		t.Errorf("wrong token: %v", err)
	}
	if f.origin.count(k) != 0 {
		t.Error("an unauthenticated call reached the origin")
	}
	// No deadline.
	conn, _ := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken))))
	defer conn.Close()
	_, err := peerpb.NewPeerClient(conn).Status(context.Background(), &peerpb.StatusRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("no deadline: %v", err)
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
	c, err := Dial(f.addr, ClientOptions{Token: []byte(testToken)})
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
	f := newFixture(t, objs, func(o *ServerOptions) { o.OriginConcurrency = 3 })
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
		if f.origin.count(k) != 1 {
			t.Errorf("%s fetched %d times", k, f.origin.count(k))
		}
	}
	if _, err := f.client.Warm(ctx10s(t), "models", nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty warm: %v", err)
	}
}

// lyingServer answers every Read with bytes that do not match its checksum.
type lyingServer struct {
	peerpb.UnimplementedPeerServer
}

func (lyingServer) Read(req *peerpb.ReadRequest, s grpc.ServerStreamingServer[peerpb.ReadChunk]) error {
	return s.Send(&peerpb.ReadChunk{Data: []byte("hello"), Length: 5, ObjectSize: 5, Last: true, Crc32C: 12345})
}

func TestClientRejectsBadChecksum(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	peerpb.RegisterPeerServer(g, lyingServer{})
	go g.Serve(l)
	defer g.Stop()
	c, err := Dial(l.Addr().String(), ClientOptions{Token: []byte(testToken), GRPCReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _, err := c.Read(ctx10s(t), "models", key(1, 5), 0, -1)
	if !errors.Is(err, ErrChecksum) || got != nil {
		t.Fatalf("got %q, %v; want ErrChecksum and no bytes", got, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	store, err := blockstore.Open(context.Background(), blockstore.Options{Dir: t.TempDir(), CapacityBytes: 1 << 20, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	vol := Volume{Name: "a", UUID: "u", Origin: &fakeOrigin{}}
	tests := []struct {
		name string
		o    ServerOptions
		msg  string
	}{
		{"no store", ServerOptions{Token: []byte(testToken), Volumes: []Volume{vol}}, "store is required"},
		{"no volumes", ServerOptions{Store: store, Token: []byte(testToken)}, "at least one volume"},
		{"short token", ServerOptions{Store: store, Token: []byte("short"), Volumes: []Volume{vol}}, "shorter than 16"},
		{"duplicate volume", ServerOptions{Store: store, Token: []byte(testToken), Volumes: []Volume{vol, vol}}, "configured twice"},
		{"volume without origin", ServerOptions{Store: store, Token: []byte(testToken), Volumes: []Volume{{Name: "a", UUID: "u"}}}, "needs a name, a uuid and an origin"},
		{"negative bandwidth", ServerOptions{Store: store, Token: []byte(testToken), Volumes: []Volume{vol}, OriginBandwidth: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		if _, err := NewServer(tt.o); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.msg)
		}
	}
}
