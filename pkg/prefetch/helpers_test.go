package prefetch

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/peertest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/cache"
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

// testNode is an in-process cache node of the shared harness.
type testNode struct {
	*peertest.Node
	member ring.Member
	client *peer.Client
	stop   func() // kills the server at once; idempotent
}

func (n *testNode) holds(key string) bool { return n.Holds(key) }

// cluster is n nodes over one origin (internal/peertest), and the
// placement of all of them.
type cluster struct {
	t      *testing.T
	pc     *peertest.Cluster
	origin *peertest.Origin
	nodes  []*testNode
	full   *ring.Placement
}

type clusterOptions struct {
	nodes    int
	capacity int64 // block store capacity per node (default 1 GiB)
}

func newCluster(t *testing.T, co clusterOptions) *cluster {
	t.Helper()
	pc := peertest.Start(t, peertest.Options{
		Nodes: co.nodes, Token: testToken, Volume: testVolume, VolumeUUID: testUUID,
		Capacity: co.capacity, Grace: time.Millisecond,
		Cache: func(o *cache.Options) { o.OriginConcurrency = 4 },
	})
	c := &cluster{t: t, pc: pc, origin: pc.Origin, full: pc.Placement()}
	for _, n := range pc.Nodes {
		c.nodes = append(c.nodes, &testNode{Node: n, member: n.Member, client: n.Client, stop: n.Down})
	}
	return c
}

func (c *cluster) placement(ms ...ring.Member) *ring.Placement {
	c.t.Helper()
	return c.pc.NewPlacement(ms...)
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
			c.origin.Put(k, b)
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
	return r.c.pc.Placement(), nil
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
