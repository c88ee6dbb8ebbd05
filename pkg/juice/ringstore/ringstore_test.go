package ringstore

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

func TestReadGoesToPrimaryOwner(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, nil) // default hedging: no hedge on a healthy ring
	if got := s.Members(); len(got) != 3 {
		t.Fatalf("members after New = %v, want the 3 nodes (New reads the view once)", got)
	}
	sizes := []int{64 << 10, 100 << 10, 300 << 10}
	keys, datas := make([]string, 3), make([][]byte, 3)
	for i, n := range c.nodes {
		keys[i], datas[i] = c.block(sizes[i], ownedBy(n.addr))
	}
	for pass := range 2 { // cold (the owner fetches), then warm (a hit)
		for i := range c.nodes {
			before := c.reads()
			get(t, s, testPrefix+keys[i], 0, -1, datas[i])
			after := c.reads()
			for j := range c.nodes {
				want := before[j]
				if j == i {
					want++
				}
				if after[j] != want {
					t.Errorf("pass %d block %d (primary node %d): node %d reads %d -> %d, want %d", pass, i, i, j, before[j], after[j], want)
				}
			}
		}
		want := Stats{
			LocalReads: int64(pass + 1), LocalBytes: int64((pass + 1) * sizes[0]),
			PeerReads: int64(2 * (pass + 1)), PeerBytes: int64((pass + 1) * (sizes[1] + sizes[2])),
		}
		if got := s.Stats(); got != want {
			t.Errorf("pass %d: stats = %+v, want %+v", pass, got, want)
		}
	}
	if n := c.peerOrigin.gets.Load(); n != 3 {
		t.Errorf("cache nodes fetched %d times from the origin, want 3 (once per block)", n)
	}
	if n := c.origin.total(); n != 0 {
		t.Errorf("the store read the origin %d times, want 0", n)
	}
	for i, n := range c.nodes {
		if st := n.srv.Stats(); st.Hits != 1 || st.Misses != 1 {
			t.Errorf("node %d: %d hits, %d misses; want 1 and 1", i, st.Hits, st.Misses)
		}
	}
}

// The mount names its node by one address (its default is 127.0.0.1:9700)
// while the ring knows the node by the address it advertises; the node's
// reads are still local.
func TestLocalNodeUnderAnotherAddress(t *testing.T) {
	c := newCluster(t, 3)
	_, port, _ := net.SplitHostPort(c.nodes[0].addr)
	s := c.newStore(net.JoinHostPort("localhost", port), nil)
	k, data := c.block(50000, ownedBy(c.nodes[0].addr))
	get(t, s, testPrefix+k, 0, -1, data)
	if st := s.Stats(); st.LocalReads != 1 || st.LocalBytes != 50000 || st.PeerReads != 0 {
		t.Errorf("stats = %+v; want the read counted as local", st)
	}
	if n := c.nodes[0].reads(); n != 1 {
		t.Errorf("local node served %d reads, want 1", n)
	}
}

// Ranges come back exactly as the origin would return them: the store is
// a drop-in for the origin's object storage.
func TestRanges(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, nil)
	const size = 1<<20 + 123
	kl, _ := c.block(size, ownedBy(c.nodes[0].addr))
	kp, _ := c.block(size, ownedBy(c.nodes[1].addr))
	ranges := []struct{ off, limit int64 }{
		{0, -1}, {0, 1}, {5, 100}, {1<<20 - 3, 10}, {size - 1, -1}, {size - 10, 100},
		{0, size}, {0, size + 100}, {4096, 0}, {0, 0}, {100, -2},
	}
	for _, k := range []string{kl, kp} {
		for range 2 { // cold, then warm
			for _, r := range ranges {
				rc, err := c.base.Get(testPrefix+k, r.off, r.limit)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := io.ReadAll(rc)
				get(t, s, testPrefix+k, r.off, r.limit, want)
			}
		}
	}
	st := s.Stats()
	if n := int64(2 * 2 * len(ranges)); st.LocalReads+st.PeerReads != n || st.LocalReads != n/2 {
		t.Errorf("stats = %+v; want %d reads, half local, all from the ring", st, n)
	}
	if st.OriginReads != 0 || st.Fallbacks != 0 || c.origin.total() != 0 {
		t.Errorf("stats = %+v, %d origin GETs; want every range served by its owner", st, c.origin.total())
	}

	// Past the end: the owners refuse, and the answer is still the
	// origin's.
	rc, err := c.base.Get(testPrefix+kp, size, -1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(rc)
	get(t, s, testPrefix+kp, size, -1, want)
}

func TestOwnerDown(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, nil)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	k1, d1 := c.block(70000, ownedBy(b.addr, cc.addr))
	k2, d2 := c.block(80000, ownedBy(cc.addr, b.addr))
	k3, d3 := c.block(90000, ownedBy(a.addr))

	b.down()
	start := time.Now()
	get(t, s, testPrefix+k1, 0, -1, d1)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("read with the primary down took %v", took)
	}
	if n := cc.reads(); n != 1 {
		t.Errorf("second owner served %d reads, want 1", n)
	}
	if st := s.Stats(); st.Fallbacks != 1 || st.PeerReads != 1 || st.PeerBytes != 70000 || st.OriginReads != 0 {
		t.Errorf("stats = %+v; want 1 fallback and 1 peer read", st)
	}

	cc.down()
	get(t, s, testPrefix+k2, 0, -1, d2)
	st := s.Stats()
	if st.OriginReads != 1 || st.OriginBytes != 80000 || st.Fallbacks != 3 {
		t.Errorf("stats = %+v; want the origin to serve after 2 more fallbacks", st)
	}
	if n := c.origin.count(testPrefix + k2); n != 1 {
		t.Errorf("origin GETs of the block = %d, want 1", n)
	}
	// A range of a block whose owners are all down comes from the origin.
	get(t, s, testPrefix+k1, 10, 20, d1[10:30])

	// The local node's blocks are still local.
	get(t, s, testPrefix+k3, 0, -1, d3)
	if st := s.Stats(); st.LocalReads != 1 || st.LocalBytes != 90000 {
		t.Errorf("stats = %+v; want a local read", st)
	}

	// An owner that comes back is used again, once gRPC's reconnect
	// backoff (real time) lets the store's client reach it.
	b.up()
	waitFor(t, 10*time.Second, "the restarted owner to serve", func() bool {
		before := b.reads()
		get(t, s, testPrefix+k1, 0, -1, d1)
		return b.reads() == before+1
	})
}

// warm reads keys once so the owners hold them and the store has latency
// samples.
func warm(t *testing.T, s *Store, keys []string, datas [][]byte) {
	t.Helper()
	for i, k := range keys {
		get(t, s, testPrefix+k, 0, -1, datas[i])
	}
}

// warmBlocks makes n blocks of size whose owners satisfy pred and reads
// each once through s.
func warmBlocks(t *testing.T, c *cluster, s *Store, n, size int, pred func([]ring.Member) bool) ([]string, [][]byte) {
	t.Helper()
	var keys []string
	var datas [][]byte
	for range n {
		k, d := c.block(size, pred)
		keys, datas = append(keys, k), append(datas, d)
	}
	warm(t, s, keys, datas)
	return keys, datas
}

// warmOn makes node n hold keys (a Warm call, as a warm-up with replicas
// does).
func warmOn(t *testing.T, n *node, keys []string) {
	t.Helper()
	cl, err := peer.Dial(n.addr, peer.ClientOptions{Token: []byte(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Warm(context.Background(), testVol, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Error != "" {
			t.Fatalf("warm %s on %s: %s", r.Key, n.addr, r.Error)
		}
	}
}

func TestSlowOwnerIsHedged(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, func(o *Options) { o.HedgeMin, o.HedgeMax = 20*time.Millisecond, 100*time.Millisecond })
	b, cc := c.nodes[1], c.nodes[2]
	keys, datas := warmBlocks(t, c, s, 20, 32<<10, ownedBy(b.addr, cc.addr))
	warmOn(t, cc, keys) // a hedge goes only to an owner holding the block
	before, beforeC := s.Stats(), cc.reads()

	b.store.delay.Store(int64(2 * time.Second))
	start := time.Now()
	get(t, s, testPrefix+keys[0], 0, -1, datas[0])
	took := time.Since(start)
	if took > time.Second {
		t.Errorf("read from a 2s-slow owner took %v; want the hedge to win", took)
	}
	if took < 20*time.Millisecond {
		t.Errorf("read took %v; the hedge must wait at least HedgeMin", took)
	}
	st := s.Stats()
	if st.Hedges-before.Hedges != 1 || st.PeerReads-before.PeerReads != 1 || st.Fallbacks != before.Fallbacks || st.OriginReads != 0 {
		t.Errorf("stats %+v -> %+v; want exactly one hedge, won by a peer", before, st)
	}
	if n := cc.reads() - beforeC; n != 1 {
		t.Errorf("the next owner served %d reads, want 1 (the hedge)", n)
	}
}

// A slow primary and a dead second owner still cost only latency.
func TestSlowOwnerAndDeadSecond(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, func(o *Options) { o.HedgeMin, o.HedgeMax = 20*time.Millisecond, 100*time.Millisecond })
	b, cc := c.nodes[1], c.nodes[2]
	keys, datas := warmBlocks(t, c, s, 20, 16<<10, ownedBy(b.addr, cc.addr))
	b.store.delay.Store(int64(2 * time.Second))
	cc.down()
	start := time.Now()
	get(t, s, testPrefix+keys[0], 0, -1, datas[0])
	if took := time.Since(start); took > time.Second {
		t.Errorf("read took %v; want the origin to answer soon after the hedge failed", took)
	}
	if st := s.Stats(); st.OriginReads != 1 {
		t.Errorf("stats = %+v; want the origin to serve", st)
	}
}

func TestHedgeBudget(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, func(o *Options) {
		o.HedgeMin, o.HedgeMax, o.HedgeBudget = 5*time.Millisecond, 20*time.Millisecond, 0.1
	})
	b, cc := c.nodes[1], c.nodes[2]
	const n = 50
	var keys []string
	var datas [][]byte
	for range n {
		k, d := c.block(4096, ownedBy(b.addr, cc.addr))
		keys, datas = append(keys, k), append(datas, d)
	}
	warm(t, s, keys, datas)
	warmOn(t, cc, keys)
	before := s.Stats().Hedges

	b.store.delay.Store(int64(150 * time.Millisecond))
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan string, n)
	for range 5 {
		wg.Go(func() {
			for i := range work {
				rc, err := s.Get(testPrefix+keys[i], 0, -1)
				if err != nil {
					errs <- err.Error()
					continue
				}
				got, _ := io.ReadAll(rc)
				if !bytes.Equal(got, datas[i]) {
					errs <- "wrong bytes for " + keys[i]
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	reads, hedges := s.reads.Load(), s.Stats().Hedges
	if reads != 2*n {
		t.Errorf("store counted %d block reads, want %d", reads, 2*n)
	}
	if limit := int64(0.1*float64(reads)) + 1; hedges > limit {
		t.Errorf("%d hedges for %d reads; the budget allows %d", hedges, reads, limit)
	}
	if hedges-before < 3 {
		t.Errorf("only %d hedges for %d slow reads; want hedging up to the budget", hedges-before, n)
	}
}

func TestHedgeDelay(t *testing.T) {
	s := &Store{o: Options{HedgeMin: 20 * time.Millisecond, HedgeMax: 100 * time.Millisecond, HedgeFactor: 2}, lat: newLatencies(256)}
	if d := s.hedgeDelay(); d != 100*time.Millisecond {
		t.Errorf("no samples: delay %v, want HedgeMax", d)
	}
	for range 15 {
		s.lat.add(time.Millisecond)
	}
	if d := s.hedgeDelay(); d != 100*time.Millisecond {
		t.Errorf("15 samples: delay %v, want HedgeMax (too few to trust)", d)
	}
	s.lat.add(time.Millisecond)
	if d := s.hedgeDelay(); d != 20*time.Millisecond {
		t.Errorf("fast owners: delay %v, want HedgeMin", d)
	}
	for range 256 {
		s.lat.add(30 * time.Millisecond)
	}
	if d := s.hedgeDelay(); d != 60*time.Millisecond {
		t.Errorf("30ms owners: delay %v, want 2 x p95 = 60ms", d)
	}
	for range 20 { // 20 of 256 slow: above the 95th percentile
		s.lat.add(time.Second)
	}
	if d := s.hedgeDelay(); d != 100*time.Millisecond {
		t.Errorf("slow tail: delay %v, want HedgeMax", d)
	}
}

func TestLyingPeerIsNeverServed(t *testing.T) {
	c := newCluster(t, 1)
	a := c.nodes[0]
	l1, l2 := c.addLiar("liar-1"), c.addLiar("liar-2")
	c.setMembers(a.member, l1.member, l2.member)
	// The liars lie on the gRPC stream (pkg/peer tests a lying data plane).
	s := c.newStore(a.addr, func(o *Options) { o.GRPCReads = true })
	k1, d1 := c.block(40000, ownedBy(l1.member.Addr, a.addr))
	get(t, s, testPrefix+k1, 0, -1, d1)
	if l1.calls.Load() != 1 {
		t.Fatalf("the liar was asked %d times, want 1", l1.calls.Load())
	}
	if st := s.Stats(); st.ChecksumErrors != 1 || st.Fallbacks != 1 || st.LocalReads != 1 || st.PeerReads != 0 {
		t.Errorf("stats = %+v; want 1 checksum error and the read served by the next owner", st)
	}
	get(t, s, testPrefix+k1, 100, 1000, d1[100:1100])

	k2, d2 := c.block(50000, ownedBy(l1.member.Addr, l2.member.Addr))
	get(t, s, testPrefix+k2, 0, -1, d2)
	if st := s.Stats(); st.ChecksumErrors != 4 || st.OriginReads != 1 || st.OriginBytes != 50000 {
		t.Errorf("stats = %+v; want 2 more checksum errors and the origin serving", st)
	}
}

// refreshLog is a slog handler that counts the store's view refreshes by
// outcome ("ring view updated", "ring view refresh failed"), so that a test
// that ticks the store's clock can wait for the refresh the tick started.
// A refresh that finds the view unchanged logs nothing.
type refreshLog struct {
	mu      sync.Mutex
	n       map[string]int
	changed chan struct{} // closed and replaced on each record
}

const (
	refreshUpdated = "ring view updated"
	refreshFailed  = "ring view refresh failed, keeping the last view"
)

func newRefreshLog() *refreshLog {
	return &refreshLog{n: map[string]int{}, changed: make(chan struct{})}
}

func (h *refreshLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *refreshLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *refreshLog) WithGroup(string) slog.Handler            { return h }

func (h *refreshLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Message]++
	close(h.changed)
	h.changed = make(chan struct{})
	return nil
}

// refreshes returns how many refreshes have logged their outcome.
func (h *refreshLog) refreshes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[refreshUpdated] + h.n[refreshFailed]
}

func (h *refreshLog) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[msg]
}

// await waits until cond holds, checking it at each record.
func (h *refreshLog) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		h.mu.Lock()
		ch := h.changed
		h.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("%s: not logged within 10s", what)
		}
	}
}

func TestLocalNodeUnreachableAtStart(t *testing.T) {
	c := newCluster(t, 2)
	a := c.addNode(false) // the local node, down
	b, cc := c.nodes[0], c.nodes[1]
	c.setMembers(a.member, b.member, cc.member)
	// The store's refreshes tick on a fake clock. It starts at the real
	// time: the block budgets it times become real context deadlines.
	clk := clocktest.New(time.Now())
	logs := newRefreshLog()
	const interval = 50 * time.Millisecond
	s := c.newStore(a.addr, func(o *Options) { o.Clock, o.Logger, o.RefreshInterval = clk, slog.New(logs), interval })
	// tick fires the refresh ticker once and waits for that refresh.
	tick := func() {
		t.Helper()
		n := logs.refreshes()
		clk.Advance(interval)
		logs.await(t, "the refresh of a tick", func() bool { return logs.refreshes() > n })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("the refresh loop armed no ticker: %v", err)
	}
	if n := logs.count(refreshFailed); n != 1 {
		t.Fatalf("%d failed refreshes logged by New, want 1", n)
	}
	if m := s.Members(); m != nil {
		t.Fatalf("members without a local node = %v", m)
	}
	kb, db := c.block(30000, ownedBy(b.addr))
	get(t, s, testPrefix+kb, 0, -1, db)
	if st := s.Stats(); st.OriginReads != 1 || st.Fallbacks != 0 || b.reads() != 0 {
		t.Errorf("stats = %+v, owner reads %d; want the origin to serve without a view", st, b.reads())
	}

	a.up()
	// The client may still be in gRPC's reconnect backoff, which runs on
	// real time: tick until a refresh gets the view, pacing the ticks with
	// a deadline.
	deadline := time.Now().Add(8 * time.Second)
	for tick(); len(s.Members()) != 3; tick() {
		if time.Now().After(deadline) {
			t.Fatalf("no view from the local node within 8s: members %v", s.Members())
		}
		time.Sleep(10 * time.Millisecond) // paces the poll of gRPC's real-time backoff
	}
	if n := logs.count(refreshUpdated); n != 1 {
		t.Fatalf("%d view updates logged, want 1", n)
	}
	get(t, s, testPrefix+kb, 0, -1, db)
	if b.reads() != 1 || s.Stats().OriginReads != 1 {
		t.Errorf("after the view: owner reads %d, stats %+v; want the owner to serve", b.reads(), s.Stats())
	}

	// The local node goes down: the last view stays.
	ka, da := c.block(30000, ownedBy(a.addr, cc.addr))
	kc, dc := c.block(30000, ownedBy(cc.addr))
	a.down()
	failed := logs.count(refreshFailed)
	for range 3 {
		tick()
	}
	if n := logs.count(refreshFailed) - failed; n != 3 {
		t.Fatalf("%d of 3 refreshes after the local node went down failed, want all", n)
	}
	if m := s.Members(); len(m) != 3 {
		t.Fatalf("members after the local node went down = %v; want the last view", m)
	}
	originBefore := c.origin.total()
	get(t, s, testPrefix+ka, 0, -1, da)
	get(t, s, testPrefix+kc, 0, -1, dc)
	if n := c.origin.total() - originBefore; n != 0 {
		t.Errorf("%d origin GETs with the local node down; want the other owners to serve", n)
	}
	if st := s.Stats(); st.OriginReads != 1 || st.Fallbacks != 1 || st.PeerReads != 3 {
		t.Errorf("stats = %+v; want 1 fallback (the local node) and peers serving", st)
	}
}

func TestMembershipChange(t *testing.T) {
	c := newCluster(t, 3)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	d := c.addNode(true) // up, not yet a member
	// The store's refreshes tick on a fake clock (started at the real time:
	// the block budgets it times become real context deadlines); a tick
	// waits for the logged outcome of the refresh it started.
	clk := clocktest.New(time.Now())
	logs := newRefreshLog()
	const interval = 50 * time.Millisecond
	s := c.newStore(a.addr, func(o *Options) { o.Clock, o.Logger, o.RefreshInterval = clk, slog.New(logs), interval })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatalf("the refresh loop armed no ticker: %v", err)
	}
	// refresh fires the refresh ticker once and waits for that refresh to
	// update the view (the local node is up: it does not fail).
	refresh := func(what string) {
		t.Helper()
		n := logs.count(refreshUpdated)
		clk.Advance(interval)
		logs.await(t, what, func() bool { return logs.count(refreshUpdated) > n })
		if f := logs.count(refreshFailed); f != 0 {
			t.Fatalf("%d refreshes failed with the local node up", f)
		}
	}
	if m := s.Members(); len(m) != 3 {
		t.Fatalf("members at start = %v, want 3", m)
	}

	grown := placement(t, a.member, b.member, cc.member, d.member)
	k1, d1 := c.blockIn(grown, 20000, 2, ownedBy(d.addr))
	get(t, s, testPrefix+k1, 0, -1, d1)
	if d.reads() != 0 {
		t.Fatal("a node outside the ring was read")
	}

	c.setMembers(a.member, b.member, cc.member, d.member)
	refresh("the refresh of the grown view")
	if m := s.Members(); len(m) != 4 || !slices.Contains(m, d.addr) {
		t.Fatalf("members after the join = %v, want 4 with %s", m, d.addr)
	}
	get(t, s, testPrefix+k1, 0, -1, d1)
	if d.reads() != 1 {
		t.Errorf("the new owner served %d reads, want 1", d.reads())
	}

	// cc leaves: its blocks go to their new owner, never to cc.
	shrunk := placement(t, a.member, b.member, d.member)
	k2, d2 := c.block(20000, ownedBy(cc.addr))
	newOwner := c.nodeAt(shrunk.Owners(blockkey.Ring(testVol, k2), 1)[0].Addr)
	c.setMembers(a.member, b.member, d.member)
	refresh("the refresh of the shrunk view")
	if m := s.Members(); len(m) != 3 || slices.Contains(m, cc.addr) {
		t.Fatalf("members after the leave = %v, want 3 without %s", m, cc.addr)
	}
	ccBefore, ownerBefore := cc.reads(), newOwner.reads()
	get(t, s, testPrefix+k2, 0, -1, d2)
	if cc.reads() != ccBefore || newOwner.reads() != ownerBefore+1 {
		t.Errorf("after the leave: old owner reads +%d, new owner +%d; want 0 and 1", cc.reads()-ccBefore, newOwner.reads()-ownerBefore)
	}
	if st := s.Stats(); st.Fallbacks != 0 || st.OriginReads != 0 {
		t.Errorf("stats = %+v; want no fallbacks across membership changes", st)
	}
}

func (c *cluster) nodeAt(addr string) *node {
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	c.t.Fatalf("no node at %s", addr)
	return nil
}

func TestPassThrough(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, nil)
	objs := map[string][]byte{
		testPrefix + "meta/dump-2025.json.gz":  randBytes(300),
		"other/" + blockKey(5, 10):             randBytes(10), // another volume's block
		blockKey(6, 10):                        randBytes(10), // no prefix
		testPrefix + "chunks/0/0/07_0_10":      randBytes(10), // not canonical
		testPrefix + "chunks/0/0/8_0_10/extra": randBytes(10),
	}
	for k, v := range objs {
		if err := c.base.Put(k, bytes.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range objs {
		get(t, s, k, 0, -1, v)
		get(t, s, k, 2, 5, v[2:7])
		if n := c.origin.count(k); n != 2 {
			t.Errorf("%s: %d origin GETs, want 2", k, n)
		}
	}
	if _, err := s.Get(testPrefix+"meta/missing", 0, -1); err == nil {
		t.Error("Get of a missing object succeeded")
	}
	st := s.Stats()
	if st.PassThrough != int64(2*len(objs)+1) || st.LocalReads+st.PeerReads+st.OriginReads != 0 {
		t.Errorf("stats = %+v; want %d pass-through calls and no block reads", st, 2*len(objs)+1)
	}
	for i, n := range c.nodes {
		if n.reads() != 0 {
			t.Errorf("node %d served %d reads of non-block objects", i, n.reads())
		}
	}

	// Writes, deletes, heads and lists go to the origin.
	k := testPrefix + blockKey(9, 3)
	if err := s.Put(k, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	rc, err := c.base.Get(k, 0, -1)
	if err != nil {
		t.Fatalf("Put did not reach the origin: %v", err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "abc" {
		t.Errorf("origin holds %q after Put", b)
	}
	if h, err := s.Head(k); err != nil || h.Size() != 3 {
		t.Errorf("Head = %v, %v", h, err)
	}
	objsListed, _, _, err := s.List(testPrefix+"chunks/", "", "", "", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range objsListed {
		listed = append(listed, o.Key())
	}
	if !slices.Contains(listed, k) {
		t.Errorf("List = %v, want it to include %s", listed, k)
	}
	if err := s.Delete(k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.base.Head(k); err == nil {
		t.Error("Delete did not reach the origin")
	}
	if got := s.Stats().PassThrough; got != st.PassThrough {
		t.Errorf("PassThrough %d -> %d; only Get counts", st.PassThrough, got)
	}
	if !strings.Contains(s.String(), c.nodes[0].addr) || strings.Contains(s.String(), testToken) {
		t.Errorf("String() = %q; want the node and no token", s.String())
	}
}

func TestNegativeBudgetDisablesHedging(t *testing.T) {
	o := Options{HedgeBudget: -1}
	s := &Store{o: o}
	for range 100 {
		s.reads.Add(1)
		if s.takeHedge() {
			t.Fatal("a hedge was allowed with hedging disabled")
		}
	}
	s.o.HedgeBudget = 0.1
	n := 0
	for range 100 {
		if s.takeHedge() {
			n++
		}
	}
	if n != 11 {
		t.Errorf("budget 0.1 over 100 reads allowed %d hedges, want 11", n)
	}
}
