package ringstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/object"
	"google.golang.org/grpc"

	"github.com/ringcache/ringcache/internal/peertest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/cache"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

// The test cluster: real peer.Servers over real blockstores on 127.0.0.1,
// one in-memory JuiceFS bucket (object "mem" storage) that is both the
// store's origin and, through a counting cache.Origin with the volume prefix
// applied (as juice.Volume does), the origin of every cache node.

const (
	testToken  = "unit-test-cluster-token"
	testVol    = "uuid-1"
	testPrefix = "models/"
)

// peerOrigin is the cache nodes' origin: the shared bucket under
// testPrefix, counting GETs. fail makes every GET fail; frozen makes GETs
// wait until it is closed (or the caller gives up), as a SIGSTOPped
// object store does; delay slows every GET.
type peerOrigin struct {
	base   object.ObjectStorage
	gets   atomic.Int64
	fail   atomic.Bool
	frozen freezer
	delay  atomic.Int64 // nanoseconds
}

func (o *peerOrigin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.gets.Add(1)
	if o.fail.Load() {
		return nil, errors.New("origin unreachable from the cache nodes")
	}
	if err := o.frozen.wait(ctx); err != nil {
		return nil, err
	}
	if d := time.Duration(o.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return o.base.Get(testPrefix+key, off, limit)
}

// freezer blocks callers between freeze and thaw.
type freezer struct{ ch atomic.Pointer[chan struct{}] }

func (f *freezer) freeze() {
	ch := make(chan struct{})
	f.ch.Store(&ch)
}

func (f *freezer) thaw() {
	if ch := f.ch.Swap(nil); ch != nil {
		close(*ch)
	}
}

// wait returns when thawed (nil) or when ctx ends (its error).
func (f *freezer) wait(ctx context.Context) error {
	ch := f.ch.Load()
	if ch == nil {
		return nil
	}
	select {
	case <-*ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// countingOrigin is the store's origin: the shared bucket, counting Gets
// by key.
type countingOrigin struct {
	object.ObjectStorage
	mu     sync.Mutex
	gets   map[string]int
	frozen freezer // Gets wait for the thaw: JuiceFS clients take no context
}

func (o *countingOrigin) Get(key string, off, limit int64, getters ...object.AttrGetter) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	o.mu.Unlock()
	o.frozen.wait(context.Background())
	return o.ObjectStorage.Get(key, off, limit, getters...)
}

func (o *countingOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

func (o *countingOrigin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.gets {
		n += c
	}
	return n
}

// slowStore is a blockstore whose reads (hits) take delay; a cancelled
// caller stops waiting.
type slowStore struct {
	*blockstore.Store
	delay atomic.Int64 // nanoseconds
}

func (s *slowStore) Get(ctx context.Context, k blockstore.Key, off, limit int64) ([]byte, blockstore.Meta, error) {
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, blockstore.Meta{}, ctx.Err()
		}
	}
	return s.Store.Get(ctx, k, off, limit)
}

// node is one cache node of the shared harness (internal/peertest): a
// real peer.Server over a real cache that can be stopped and started
// again on the same address.
type node struct {
	*peertest.Node
	member ring.Member
	addr   string
	srv    *peertest.Node // Stats: the server's and the cache's counters
	store  *slowStore
}

// up starts serving on the node's address.
func (n *node) up() { n.Up() }

// down stops the server and closes its listener.
func (n *node) down() { n.Down() }

func (n *node) reads() int64 { return n.srv.Stats().Reads }

type cluster struct {
	t          testing.TB
	pc         *peertest.Cluster
	base       object.ObjectStorage // the bucket
	origin     *countingOrigin      // the store's origin
	peerOrigin *peerOrigin          // the cache nodes' origin
	nodes      []*node
	nextID     atomic.Int64
}

// newCluster starts n cache nodes, all members of the ring.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	base, err := object.CreateStorage("mem", "bucket", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t: t, base: base,
		origin:     &countingOrigin{ObjectStorage: base, gets: map[string]int{}},
		peerOrigin: &peerOrigin{base: base},
	}
	c.pc = peertest.Start(t, peertest.Options{
		Token: testToken, Volume: "models", VolumeUUID: testVol, Storage: "mem", Origin: c.peerOrigin,
		NodeID:    func(i int) string { return fmt.Sprintf("node-%d", i) },
		WrapStore: func(bs *blockstore.Store) cache.Store { return &slowStore{Store: bs} },
	})
	var ms []ring.Member
	for range n {
		ms = append(ms, c.addNode(true).member)
	}
	c.setMembers(ms...)
	return c
}

// addNode adds a cache node that is not yet a ring member; serve false
// leaves it down (its address reserved but not listening).
func (c *cluster) addNode(serve bool) *node {
	c.t.Helper()
	pn := c.pc.AddNode(serve)
	n := &node{Node: pn, member: pn.Member, addr: pn.Addr, srv: pn, store: pn.CacheStore.(*slowStore)}
	c.nodes = append(c.nodes, n)
	return n
}

// setMembers changes the ring every node reports in Status.
func (c *cluster) setMembers(ms ...ring.Member) *ring.Placement {
	c.t.Helper()
	return c.pc.SetMembers(ms...)
}

func placement(t testing.TB, ms ...ring.Member) *ring.Placement {
	t.Helper()
	p, err := ring.NewPlacement(ring.Config{PartitionCount: peertest.DefaultPartitionCount}, ms)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func blockKey(id, size int) string { return fmt.Sprintf("chunks/0/%d/%d_0_%d", id/1000, id, size) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// block finds a fresh block key of size whose first n owners under p
// satisfy pred, and stores random bytes for it in the bucket.
func (c *cluster) blockIn(p *ring.Placement, size, n int, pred func(owners []ring.Member) bool) (string, []byte) {
	c.t.Helper()
	for range 100000 {
		k := blockKey(int(c.nextID.Add(1)), size)
		if pred == nil || pred(p.Owners(blockkey.Ring(testVol, k), n)) {
			data := randBytes(size)
			if err := c.base.Put(testPrefix+k, bytes.NewReader(data)); err != nil {
				c.t.Fatal(err)
			}
			return k, data
		}
	}
	c.t.Fatal("no block key with the wanted owners")
	return "", nil
}

// block is blockIn for the current ring and two owners.
func (c *cluster) block(size int, pred func(owners []ring.Member) bool) (string, []byte) {
	c.t.Helper()
	return c.blockIn(c.pc.Placement(), size, 2, pred)
}

// ownedBy matches blocks whose ranked owners start with addrs.
func ownedBy(addrs ...string) func([]ring.Member) bool {
	return func(ms []ring.Member) bool {
		if len(ms) < len(addrs) {
			return false
		}
		for i, a := range addrs {
			if ms[i].Addr != a {
				return false
			}
		}
		return true
	}
}

func (c *cluster) newStore(local string, mod func(*Options)) *Store {
	c.t.Helper()
	o := Options{
		Origin: c.origin, LocalNode: local, Token: []byte(testToken), Volume: testVol, Prefix: testPrefix,
		AttemptTimeout: 5 * time.Second, RefreshInterval: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(s.Shutdown)
	return s
}

// reads returns every node's Reads counter.
func (c *cluster) reads() []int64 {
	out := make([]int64, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.reads()
	}
	return out
}

// get reads key through s and checks the bytes.
func get(t testing.TB, s *Store, key string, off, limit int64, want []byte) {
	t.Helper()
	rc, err := s.Get(key, off, limit)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", key, off, limit, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): read body: %v", key, off, limit, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s, %d, %d): %d bytes, want %d (or different content)", key, off, limit, len(got), len(want))
	}
}

// waitFor polls cond until it holds, failing after timeout. It is only for
// what runs on real time outside the test's control, such as gRPC's
// reconnect backoff to a restarted node (the sleep only paces the poll;
// nothing is asserted without cond). Work the store's clock decides is
// driven with a clocktest.Fake and waited for by its outcome instead.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// liar is a peer that answers Read with the right length and the
// checksum of the true bytes, but corrupted bytes.
type liar struct {
	peerpb.UnimplementedPeerServer
	member ring.Member
	base   object.ObjectStorage
	calls  atomic.Int64
}

func (l *liar) Read(req *peerpb.ReadRequest, s grpc.ServerStreamingServer[peerpb.ReadChunk]) error {
	l.calls.Add(1)
	rc, err := l.base.Get(testPrefix+req.Key, req.Offset, req.Limit)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x40
	return s.Send(&peerpb.ReadChunk{Data: bad, Length: int64(len(bad)), ObjectSize: int64(len(bad)), Last: true, Crc32C: sum})
}

func (c *cluster) addLiar(id string) *liar {
	c.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	g := grpc.NewServer()
	lr := &liar{base: c.base, member: ring.Member{ID: id, Addr: l.Addr().String(), Weight: 1, PlacementVersion: 1}}
	peerpb.RegisterPeerServer(g, lr)
	go g.Serve(l)
	c.t.Cleanup(g.Stop)
	return lr
}
