package ringstore

import (
	"errors"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// A hedge is not sent to an owner that does not hold the block: it would
// fetch the block from the origin a second time. Cold reads from a slow
// origin cost one origin GET per block.
func TestHedgeSkipsOwnerWithoutBlock(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, func(o *Options) { o.HedgeMin, o.HedgeMax = 20*time.Millisecond, 50*time.Millisecond })
	b, cc := c.nodes[1], c.nodes[2]
	// Latency samples from fast warm reads, so the hedging delay is short.
	warmBlocks(t, c, s, 20, 8<<10, ownedBy(b.addr, cc.addr))
	gets := c.peerOrigin.gets.Load()

	c.peerOrigin.delay.Store(int64(300 * time.Millisecond))
	const n = 5
	for range n {
		k, d := c.block(64<<10, ownedBy(b.addr, cc.addr))
		get(t, s, testPrefix+k, 0, -1, d)
	}
	st := s.Stats()
	if got := c.peerOrigin.gets.Load() - gets; got != n {
		t.Errorf("%d cold reads from a slow origin cost %d origin fetches by the owners, want %d", n, got, n)
	}
	if st.Hedges != 0 || st.HedgesSkipped != n || c.origin.total() != 0 {
		t.Errorf("stats %+v, %d direct origin GETs; want %d hedges skipped, none sent, no direct GET", st, c.origin.total(), n)
	}

	// A slow owner whose next owner holds the block is still hedged.
	c.peerOrigin.delay.Store(0)
	keys, datas := warmBlocks(t, c, s, 1, 8<<10, ownedBy(b.addr, cc.addr))
	warmOn(t, cc, keys)
	b.store.delay.Store(int64(2 * time.Second))
	start := time.Now()
	get(t, s, testPrefix+keys[0], 0, -1, datas[0])
	if took := time.Since(start); took > time.Second {
		t.Errorf("read from a slow owner with a warm second owner took %v", took)
	}
	if st2 := s.Stats(); st2.Hedges != 1 {
		t.Errorf("stats %+v; want one hedge", st2)
	}
}

// With the origin frozen, a cold block's Gets, as JuiceFS retries them,
// end within the budget plus one probe each, while warm blocks are served;
// after the thaw the next Get succeeds and the streak is gone.
func TestReadBudgetOriginFrozen(t *testing.T) {
	c := newCluster(t, 3)
	const budget, probe = 400 * time.Millisecond, 50 * time.Millisecond
	s := c.newStore(c.nodes[0].addr, func(o *Options) {
		o.ReadBudget, o.ProbeTimeout, o.RetryWindow = budget, probe, 5*time.Second
		o.HedgeMin, o.HedgeMax = 20*time.Millisecond, 50*time.Millisecond
	})
	warmKeys, warmDatas := warmBlocks(t, c, s, 20, 8<<10, nil)
	cold, coldData := c.block(32<<10, nil)

	c.peerOrigin.frozen.freeze()
	c.origin.frozen.freeze()
	defer c.peerOrigin.frozen.thaw()
	defer c.origin.frozen.thaw()
	fetches := c.peerOrigin.gets.Load()

	start := time.Now()
	const attempts = 11 // JuiceFS: 1 + --io-retries 10
	for i := range attempts {
		t0 := time.Now()
		_, err := s.Get(testPrefix+cold, 0, -1)
		took := time.Since(t0)
		if !errors.Is(err, ErrReadTimeout) {
			t.Fatalf("attempt %d: %v, want ErrReadTimeout", i+1, err)
		}
		if i == 0 && (took < budget-10*time.Millisecond || took > budget+500*time.Millisecond) {
			t.Errorf("first attempt took %v, want about the budget %v", took, budget)
		}
		if i > 0 && took > probe+300*time.Millisecond {
			t.Errorf("attempt %d took %v, want about one probe (%v)", i+1, took, probe)
		}
		// Warm blocks are served meanwhile.
		get(t, s, testPrefix+warmKeys[i], 0, -1, warmDatas[i])
	}
	total := time.Since(start)
	t.Logf("%d attempts of a cold block with the origin frozen: %v in all", attempts, total)
	if bound := budget + attempts*probe + time.Second; total > bound {
		t.Errorf("%d attempts took %v, want under %v", attempts, total, bound)
	}
	if st := s.Stats(); st.ReadTimeouts != 1 {
		t.Errorf("stats %+v; want one give-up counted (logged once)", st)
	}
	// One fetch by the primary owner, which its retries join; no other
	// owner and not the store itself asked the frozen origin.
	if n, d := c.peerOrigin.gets.Load()-fetches, c.origin.count(testPrefix+cold); n != 1 || d != 0 {
		t.Errorf("frozen origin asked by the owners %d times and directly %d times, want 1 and 0", n, d)
	}

	c.peerOrigin.frozen.thaw()
	c.origin.frozen.thaw()
	get(t, s, testPrefix+cold, 0, -1, coldData)
	if n := s.budgets.len(); n != 0 {
		t.Errorf("%d streaks after the block was read, want 0", n)
	}
}

// A block whose window has passed gets a whole budget again.
func TestReadBudgetWindowEnds(t *testing.T) {
	clk := clocktest.New(time.Unix(1000, 0))
	b := newBudgets(10*time.Second, time.Second, 20*time.Second, clk)
	now := clk.Now()
	d, st, probe := b.begin("k")
	if probe || !d.Equal(now.Add(10*time.Second)) {
		t.Fatalf("first Get: deadline %v probe %v", d, probe)
	}
	clk.Advance(5 * time.Second)
	if d2, _, probe := b.begin("k"); probe || !d2.Equal(d) {
		t.Errorf("a retry within the budget: deadline %v probe %v, want the first deadline", d2, probe)
	}
	clk.Advance(5 * time.Second)
	now = clk.Now()
	if gaveUp := b.end("k", st, errors.New("x")); !gaveUp {
		t.Error("the failure at the deadline is not the give-up")
	}
	if gaveUp := b.end("k", st, errors.New("x")); gaveUp {
		t.Error("the give-up was reported twice")
	}
	if d3, _, probe := b.begin("k"); !probe || !d3.Equal(now.Add(time.Second)) {
		t.Errorf("after the budget: deadline %v probe %v, want a probe", d3, probe)
	}
	clk.Advance(21 * time.Second)
	now = clk.Now()
	if d4, st4, probe := b.begin("k"); probe || !d4.Equal(now.Add(10*time.Second)) || st4 == st {
		t.Errorf("after the window: deadline %v probe %v, want a new budget", d4, probe)
	}
	// A success ends the streak; many blocks are swept past their window.
	_, st5, _ := b.begin("k")
	b.end("k", st5, nil)
	if b.len() != 0 {
		t.Errorf("%d streaks after a success", b.len())
	}
	for i := range maxStreaks {
		b.begin(string(rune('a'+i%26)) + string(rune(i)))
	}
	clk.Advance(time.Hour)
	b.begin("new")
	if n := b.len(); n != 1 {
		t.Errorf("%d streaks after the sweep, want 1", n)
	}
}

// Ranges with extreme values: nothing overflows, no node or store panics,
// invalid ones are refused before any request, and the rest read the
// same bytes as the origin, cold and warm.
func TestGetExtremeRanges(t *testing.T) {
	c := newCluster(t, 3)
	s := c.newStore(c.nodes[0].addr, nil)
	const size = 100000
	k, data := c.block(size, nil)
	slice := func(off, limit int64) []byte { // data[off:off+limit], limit <= 0: to the end
		if off >= int64(len(data)) {
			return nil
		}
		if limit <= 0 || limit > int64(len(data))-off {
			return data[off:]
		}
		return data[off : off+limit]
	}
	valid := []struct{ off, limit int64 }{
		{1, math.MaxInt64}, {0, math.MaxInt64}, {size - 1, math.MaxInt64}, {0, math.MinInt64},
		{5, math.MaxInt64 - 4}, {MaxObjectSize / 2, math.MaxInt64}, {1, MaxObjectSize}, {0, MaxObjectSize + 1},
	}
	invalid := []struct{ off, limit int64 }{
		{-1, 10}, {math.MinInt64, -1}, {math.MaxInt64, 1}, {math.MaxInt64, math.MaxInt64},
		{MaxObjectSize + 1, 1}, {math.MaxInt64 - 1, 2},
	}
	for pass := range 2 { // cold, then warm
		for _, r := range valid {
			want := slice(r.off, r.limit)
			rc, err := s.Get(testPrefix+k, r.off, r.limit)
			if r.off > size {
				// Past the block's end: an error or nothing, never a panic.
				if err == nil {
					got, _ := io.ReadAll(rc)
					if len(got) != 0 {
						t.Errorf("pass %d: Get(%d, %d) past the end: %d bytes", pass, r.off, r.limit, len(got))
					}
				}
				continue
			}
			if err != nil {
				t.Errorf("pass %d: Get(%d, %d): %v", pass, r.off, r.limit, err)
				continue
			}
			got, _ := io.ReadAll(rc)
			if string(got) != string(want) {
				t.Errorf("pass %d: Get(%d, %d): %d bytes, want %d", pass, r.off, r.limit, len(got), len(want))
			}
		}
		before := c.reads()
		for _, r := range invalid {
			if _, err := s.Get(testPrefix+k, r.off, r.limit); !errors.Is(err, ErrBadRange) {
				t.Errorf("Get(%d, %d): %v, want ErrBadRange", r.off, r.limit, err)
			}
		}
		if after := c.reads(); !slices.Equal(after, before) {
			t.Errorf("invalid ranges reached the nodes: reads %v -> %v", before, after)
		}
	}
	// Every node still serves.
	for _, n := range c.nodes {
		warmOn(t, n, []string{k})
	}
	get(t, s, testPrefix+k, 0, -1, data)
}

func TestNormRange(t *testing.T) {
	for _, tc := range []struct {
		off, limit, wantOff, wantLimit int64
		bad                            bool
	}{
		{0, -1, 0, -1, false}, {0, 0, 0, -1, false}, {10, 5, 10, 5, false},
		{1, math.MaxInt64, 1, -1, false}, {MaxObjectSize, 1, MaxObjectSize, -1, false},
		{MaxObjectSize - 1, 1, MaxObjectSize - 1, 1, false}, {0, MaxObjectSize, 0, MaxObjectSize, false},
		{-1, 1, 0, 0, true}, {MaxObjectSize + 1, -1, 0, 0, true}, {math.MaxInt64, math.MaxInt64, 0, 0, true},
	} {
		off, limit, err := normRange(tc.off, tc.limit)
		if tc.bad != (err != nil) || (!tc.bad && (off != tc.wantOff || limit != tc.wantLimit)) {
			t.Errorf("normRange(%d, %d) = %d, %d, %v", tc.off, tc.limit, off, limit, err)
		}
	}
	if err := checkLength(11, 10); !errors.Is(err, ErrBadRange) {
		t.Errorf("11 bytes for a limit of 10: %v", err)
	}
	if err := checkLength(MaxObjectSize+1, -1); !errors.Is(err, ErrBadRange) {
		t.Errorf("more than MaxObjectSize to the end: %v", err)
	}
}
