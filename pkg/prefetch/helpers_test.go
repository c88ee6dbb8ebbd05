package prefetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

const (
	testToken  = "prefetch-unit-test-token"
	testVolume = "models"
	testUUID   = "uuid-1"
)

// origin serves objects from memory and counts GETs. fail, if set, may
// fail the n-th GET (1-based) of a key.
type origin struct {
	mu    sync.Mutex
	objs  map[string][]byte
	gets  map[string]int
	delay time.Duration
	fail  func(key string, n int) error
}

func (o *origin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	n, b, ok, delay, fail := o.gets[key], o.objs[key], o.objs[key] != nil, o.delay, o.fail
	o.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail != nil {
		if err := fail(key, n); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errors.New("no such key")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (o *origin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

func (o *origin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.gets {
		n += c
	}
	return n
}

func (o *origin) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gets = map[string]int{}
}

// testNode is an in-process cache node: a block store and a peer server.
type testNode struct {
	member ring.Member
	store  *blockstore.Store
	srv    *peer.Server
	client *peer.Client
	stop   func() // kills the server at once; idempotent
}

func (n *testNode) holds(key string) bool {
	_, ok := n.store.Has(blockstore.Key{Volume: testUUID, Object: key})
	return ok
}

// cluster is n nodes over one origin, and the placement of all of them.
type cluster struct {
	t      *testing.T
	origin *origin
	nodes  []*testNode
	full   *ring.Placement

	mu   sync.Mutex
	view *ring.Placement // what the nodes report in Status
}

type clusterOptions struct {
	nodes    int
	capacity int64 // block store capacity per node (default 1 GiB)
}

func newCluster(t *testing.T, co clusterOptions) *cluster {
	t.Helper()
	if co.capacity == 0 {
		co.capacity = 1 << 30
	}
	c := &cluster{t: t, origin: &origin{objs: map[string][]byte{}, gets: map[string]int{}}}
	var members []ring.Member
	for i := range co.nodes {
		n := &testNode{}
		var err error
		n.store, err = blockstore.Open(context.Background(), blockstore.Options{Dir: t.TempDir(), CapacityBytes: co.capacity, MinFreeBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.store.Close() })
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.member = ring.Member{ID: fmt.Sprintf("node-%d", i+1), Addr: l.Addr().String(), Weight: 1, PlacementVersion: 1}
		n.srv, err = peer.NewServer(peer.ServerOptions{
			Store: n.store, Token: []byte(testToken), OriginConcurrency: 4,
			Volumes: []peer.Volume{{Name: testVolume, UUID: testUUID, BlockSize: 4 << 20, ExactSize: true, Origin: c.origin}},
			View: func() *ring.View {
				c.mu.Lock()
				defer c.mu.Unlock()
				return &ring.View{Epoch: 1, Self: n.member, Placement: c.view}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { n.srv.Serve(ctx, l, time.Millisecond); close(done) }()
		var once sync.Once
		n.stop = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(n.stop)
		if n.client, err = peer.Dial(n.member.Addr, peer.ClientOptions{Token: []byte(testToken)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.client.Close() })
		c.nodes = append(c.nodes, n)
		members = append(members, n.member)
	}
	c.full = c.placement(members...)
	c.view = c.full
	return c
}

func (c *cluster) placement(ms ...ring.Member) *ring.Placement {
	c.t.Helper()
	p, err := ring.NewPlacement(ring.Config{PartitionCount: 271}, ms)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) without(victim *testNode) *ring.Placement {
	var ms []ring.Member
	for _, n := range c.nodes {
		if n != victim {
			ms = append(ms, n.member)
		}
	}
	return c.placement(ms...)
}

func (c *cluster) node(addr string) *testNode {
	for _, n := range c.nodes {
		if n.member.Addr == addr {
			return n
		}
	}
	c.t.Fatalf("no node at %s", addr)
	return nil
}

// owners returns the first r owners of key in p.
func owners(p *ring.Placement, key string, r int) []string {
	return ownerAddrs(p, blockkey.Ring(testUUID, key), r)
}

// holders returns the addresses of the nodes holding key.
func (c *cluster) holders(key string) []string {
	var out []string
	for _, n := range c.nodes {
		if n.holds(key) {
			out = append(out, n.member.Addr)
		}
	}
	return out
}

// blockKey is a JuiceFS block key of slice id and size.
func blockKey(id, size int) string { return fmt.Sprintf("chunks/0/%d/%d_0_%d", id/1000, id, size) }

// planFiles makes a plan of files, each of n blocks of size bytes, with
// the blocks' objects in the origin. Block ids start at firstID.
func (c *cluster) plan(firstID int, files map[string]int, size int) *Plan {
	p := &Plan{Volume: testVolume, VolumeUUID: testUUID}
	id := firstID
	for _, path := range sortedNames(files) {
		f := juice.FileBlocks{Path: path}
		for range files[path] {
			k := blockKey(id, size)
			id++
			b := make([]byte, size)
			rand.Read(b)
			c.origin.mu.Lock()
			c.origin.objs[k] = b
			c.origin.mu.Unlock()
			blk := juice.Block{Key: k, Size: int64(size)}
			f.Blocks = append(f.Blocks, blk)
			f.Size += int64(size)
			p.Blocks = append(p.Blocks, blk)
			p.Bytes += int64(size)
		}
		p.Files = append(p.Files, f)
		p.Paths = append(p.Paths, path)
	}
	return p
}

func sortedNames(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }

// subPlan is the part of p covering only the named files.
func subPlan(p *Plan, paths ...string) *Plan {
	s := &Plan{Volume: p.Volume, VolumeUUID: p.VolumeUUID, Paths: paths}
	seen := map[string]bool{}
	for _, f := range p.Files {
		for _, want := range paths {
			if f.Path != want {
				continue
			}
			s.Files = append(s.Files, f)
			for _, b := range f.Blocks {
				if !seen[b.Key] {
					seen[b.Key] = true
					s.Blocks = append(s.Blocks, b)
					s.Bytes += b.Size
				}
			}
		}
	}
	return s
}

// testRing is a Ring with a placement the test controls, whose nodes
// record the calls they get.
type testRing struct {
	c     *cluster
	clock clock.Clock

	mu        sync.Mutex
	placement func(call int) *ring.Placement // nil: c.view
	calls     int
	nodes     map[string]*recNode
}

func newTestRing(c *cluster, clock clock.Clock) *testRing {
	return &testRing{c: c, clock: clock, nodes: map[string]*recNode{}}
}

func (r *testRing) Placement(ctx context.Context) (*ring.Placement, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.placement != nil {
		return r.placement(r.calls), nil
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.view, nil
}

func (r *testRing) Node(addr string) (Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.nodes[addr]; n != nil {
		return n, nil
	}
	n := &recNode{Client: r.c.node(addr).client, addr: addr, clock: r.clock}
	r.nodes[addr] = n
	return n, nil
}

func (r *testRing) node(addr string) *recNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.nodes[addr]; n != nil {
		return n
	}
	return &recNode{addr: addr}
}

func (r *testRing) placementCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// recNode records the Warm calls a node gets.
type recNode struct {
	*peer.Client
	addr  string
	clock clock.Clock

	mu          sync.Mutex
	warms       []warmCall
	inflight    int
	maxInflight int
}

type warmCall struct {
	at   time.Time
	keys []string
}

func (n *recNode) Warm(ctx context.Context, volume string, keys []string) ([]*peerpb.WarmResult, error) {
	n.mu.Lock()
	n.warms = append(n.warms, warmCall{at: n.clock.Now(), keys: keys})
	n.inflight++
	n.maxInflight = max(n.maxInflight, n.inflight)
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.inflight--
		n.mu.Unlock()
	}()
	return n.Client.Warm(ctx, volume, keys)
}

func (n *recNode) calls() []warmCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]warmCall(nil), n.warms...)
}

// autoClock is a fake clock.Clock whose timers fire at once, moving the
// clock to the end of the wait: a run's waits take no real time, and the
// clock ends at the latest time anything waited for. (clocktest.Fake would
// need the test to know when the run is idle to advance it.)
type autoClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ clock.Clock = (*autoClock)(nil)

func newAutoClock() *autoClock { return &autoClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *autoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// passed moves the clock to the end of a wait of d and returns that time.
func (c *autoClock) passed(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.now.Add(d); t.After(c.now) {
		c.now = t
	}
	return c.now
}

// NewTimer returns a timer that has fired already, d later.
func (c *autoClock) NewTimer(d time.Duration) clock.Timer {
	t := &autoTimer{c: c, ch: make(chan time.Time, 1)}
	t.ch <- c.passed(d)
	return t
}

// AfterFunc calls f at once, d later.
func (c *autoClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.passed(d)
	go f()
	return &autoTimer{c: c, f: f}
}

// NewTicker is not supported: a ticker firing at once would spin.
func (c *autoClock) NewTicker(time.Duration) clock.Ticker {
	panic("autoClock: NewTicker is not supported")
}

type autoTimer struct {
	c  *autoClock
	ch chan time.Time // nil for AfterFunc
	f  func()         // AfterFunc's
}

func (t *autoTimer) C() <-chan time.Time { return t.ch }

// Stop reports false: the timer fired when it was made.
func (t *autoTimer) Stop() bool { return false }

// Reset fires the timer again at once, d later.
func (t *autoTimer) Reset(d time.Duration) bool {
	if t.f != nil {
		t.c.passed(d)
		go t.f()
		return false
	}
	select {
	case <-t.ch:
	default:
	}
	t.ch <- t.c.passed(d)
	return false
}

func ctx30s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newExecutor(t *testing.T, o Options) *Executor {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
