package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockstore/blockrange"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

const testToken = "unit-test-cluster-token"

// fakeCache answers from memory as a cache does from its store, counting
// the reads that reach it: the wire's tests need no store and no origin
// (pkg/cache tests the cache behind a real server, internal/peertest).
type fakeCache struct {
	vols []Volume

	mu    sync.Mutex
	objs  map[string][]byte
	reads map[string]int
}

func (c *fakeCache) Volumes() []Volume { return c.vols }

func (c *fakeCache) Read(ctx context.Context, v Volume, key string, off, limit int64) ([]byte, BlockInfo, error) {
	c.mu.Lock()
	c.reads[key]++
	b, ok := c.objs[key]
	c.mu.Unlock()
	if !ok {
		return nil, BlockInfo{}, status.Errorf(codes.Unavailable, "fetch %s: no such key", key)
	}
	size := int64(len(b))
	start, end, err := blockrange.Range(off, limit, size)
	if err != nil {
		return nil, BlockInfo{}, RangeError(err, off, size)
	}
	return b[start:end], BlockInfo{ObjectSize: size, Compressible: true, Source: peerpb.Source_SOURCE_STORE}, nil
}

func (c *fakeCache) Has(v Volume, key string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.objs[key]
	return int64(len(b)), ok
}

func (c *fakeCache) Warm(ctx context.Context, v Volume, keys []string) []*peerpb.WarmResult {
	res := make([]*peerpb.WarmResult, len(keys))
	for i, k := range keys {
		res[i] = &peerpb.WarmResult{Key: k, State: peerpb.WarmResult_STATE_FAILED, Error: "no such key"}
		if n, ok := c.Has(v, k); ok {
			res[i].State, res[i].Size, res[i].Error = peerpb.WarmResult_STATE_CACHED, n, ""
		}
	}
	return res
}

func (c *fakeCache) Status() CacheStats { return CacheStats{} }

// count returns the reads of key that reached the cache.
func (c *fakeCache) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[key]
}

type fixture struct {
	cache  *fakeCache
	srv    *Server
	addr   string
	client *Client
}

func newFixture(t testing.TB, objs map[string][]byte, mod func(*ServerOptions)) *fixture {
	t.Helper()
	if objs == nil {
		objs = map[string][]byte{}
	}
	f := &fixture{cache: &fakeCache{objs: objs, reads: map[string]int{}, vols: []Volume{{Name: "models", UUID: "uuid-1", BlockSize: 4 << 20}}}}
	o := ServerOptions{Cache: f.cache, Token: []byte(testToken)}
	if mod != nil {
		mod(&o)
	}
	var err error
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
	if f.cache.count(k) != 0 {
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
	c := &fakeCache{vols: []Volume{{Name: "a", UUID: "u"}}}
	tests := []struct {
		name string
		o    ServerOptions
		msg  string
	}{
		{"no cache", ServerOptions{Token: []byte(testToken)}, "cache is required"},
		{"no volumes", ServerOptions{Cache: &fakeCache{}, Token: []byte(testToken)}, "at least one volume"},
		{"short token", ServerOptions{Cache: c, Token: []byte("short")}, "shorter than 16"},
		{"negative chunk size", ServerOptions{Cache: c, Token: []byte(testToken), ChunkSize: -1}, "must not be negative"},
		{"negative limit", ServerOptions{Cache: c, Token: []byte(testToken), Limits: Limits{MaxConns: -1}}, "limits must not be negative"},
	}
	for _, tt := range tests {
		if _, err := NewServer(tt.o); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.msg)
		}
	}
	o := ServerOptions{Cache: c, Token: []byte(testToken)}
	o.EnsureDefaults()
	once := o
	o.EnsureDefaults()
	if o.ChunkSize != DefaultChunkSize || o.Clock == nil || o.Logger != once.Logger || o.Limits != once.Limits || o.Limits.MaxConns != DefaultMaxConns {
		t.Errorf("defaults: %+v", o)
	}
}
