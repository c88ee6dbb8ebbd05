package prefetch

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/ring"
)

func TestOptionsValidate(t *testing.T) {
	r := newTestRing(&cluster{}, nil)
	tests := []struct {
		name string
		o    Options
		msg  string
	}{
		{"nothing", Options{}, "Ring or Seeds is required"},
		{"ring and seeds", Options{Ring: r, Seeds: []string{"a:1"}}, "not both"},
		{"seeds without token", Options{Seeds: []string{"a:1"}}, "invalid cluster token"},
		{"short token", Options{Seeds: []string{"a:1"}, Token: []byte("short")}, "invalid cluster token"},
		{"negative replicas", Options{Ring: r, Replicas: -1}, "replicas must be at least 1"},
		{"huge batch", Options{Ring: r, BatchSize: MaxBatchSize + 1}, "batch size must be in"},
		{"negative concurrency", Options{Ring: r, Concurrency: -2}, "concurrency must be at least 1"},
		{"negative bandwidth", Options{Ring: r, Bandwidth: -1}, "bandwidth must not be negative"},
		{"backoff max below initial", Options{Ring: r, BackoffInitial: time.Second, BackoffMax: time.Millisecond}, "backoff"},
		{"negative call timeout", Options{Ring: r, CallTimeout: -time.Second}, "call timeout"},
	}
	for _, tt := range tests {
		if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.msg)
		}
	}
	// Validate only checks, and reports every problem at once.
	bad := Options{Ring: r, Replicas: -1, Bandwidth: -1}
	err := bad.Validate()
	for _, want := range []string{"prefetch: invalid options", "replicas must be at least 1", "bandwidth must not be negative", "batch size must be in"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of %+v: got %v, want it to contain %q", bad, err, want)
		}
	}
	if bad.BatchSize != 0 || bad.Clock != nil || bad.Logger != nil {
		t.Errorf("Validate modified the options: %+v", bad)
	}
	o := Options{Ring: r}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Replicas != 1 || o.BatchSize != 64 || o.Concurrency != 2 || o.Retries != DefaultRetries ||
		o.BackoffInitial != DefaultBackoffInitial || o.BackoffMax != DefaultBackoffMax || o.CallTimeout != DefaultCallTimeout ||
		o.ViewRefresh != DefaultViewRefresh || o.Clock == nil || o.Logger == nil {
		t.Errorf("defaults not filled in: %+v", o)
	}
}

// TestRunGroupsAndBatches: keys go to their owners only, in batches of at
// most BatchSize, at most Concurrency calls per owner at once; every block
// is fetched once; a second run costs no origin traffic and no Warm call.
func TestRunGroupsAndBatches(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	plan := c.plan(1, map[string]int{"/m/a": 40, "/m/b": 30, "/m/c": 30, "/m/empty": 0}, 1000)
	c.origin.SetDelay(2 * time.Millisecond)
	r := newTestRing(c, clock.Real())
	var last Progress
	var calls int
	e := newExecutor(t, Options{Ring: r, BatchSize: 8, Concurrency: 2, ViewRefresh: -1,
		OnProgress: func(p Progress) { last, calls = p, calls+1 }})
	res, err := e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlocksDone != 100 || res.BlocksFetched != 100 || res.BlocksCached != 0 || res.BlocksFailed != 0 ||
		res.BytesDone != 100_000 || res.Bytes != 100_000 || res.OriginBytes != 100_000 || res.Files != 4 || res.FilesDone != 4 || len(res.Failed) != 0 {
		t.Errorf("result = %+v", res)
	}
	if calls < 2 || last != res.Progress {
		t.Errorf("%d progress calls, last %+v; want at least start and end, the last equal to the result", calls, last)
	}
	warmed := map[string]int{}
	for _, n := range c.nodes {
		rec := r.node(n.member.Addr)
		owned := 0
		for _, b := range plan.Blocks {
			if owners(c.full, b.Key, 1)[0] == n.member.Addr {
				owned++
			}
		}
		wc := rec.calls()
		if want := (owned + 7) / 8; len(wc) != want {
			t.Errorf("%s owns %d blocks: %d Warm calls, want %d", n.member.ID, owned, len(wc), want)
		}
		for _, call := range wc {
			if len(call.keys) > 8 {
				t.Errorf("%s: a Warm call of %d keys, batch size is 8", n.member.ID, len(call.keys))
			}
			for _, k := range call.keys {
				warmed[k]++
				if o := owners(c.full, k, 1)[0]; o != n.member.Addr {
					t.Errorf("%s was sent %s, owned by %s", n.member.ID, k, o)
				}
			}
		}
		if rec.maxInflight > 2 {
			t.Errorf("%s: %d Warm calls at once, concurrency is 2", n.member.ID, rec.maxInflight)
		}
	}
	for _, b := range plan.Blocks {
		if warmed[b.Key] != 1 || c.origin.Count(b.Key) != 1 {
			t.Errorf("%s: sent %d times, %d origin GETs; want 1 and 1", b.Key, warmed[b.Key], c.origin.Count(b.Key))
		}
		if h := c.holders(b.Key); !slices.Equal(h, owners(c.full, b.Key, 1)) {
			t.Errorf("%s held by %v, want its owner %v", b.Key, h, owners(c.full, b.Key, 1))
		}
	}

	// Again: everything is cached.
	c.origin.Reset()
	before := 0
	for _, n := range c.nodes {
		before += len(r.node(n.member.Addr).calls())
	}
	res, err = e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	after := 0
	for _, n := range c.nodes {
		after += len(r.node(n.member.Addr).calls())
	}
	if res.BlocksCached != 100 || res.BlocksFetched != 0 || res.OriginBytes != 0 || c.origin.Total() != 0 || after != before {
		t.Errorf("second run: %+v, %d origin GETs, %d Warm calls; want all cached, none", res.Progress, c.origin.Total(), after-before)
	}
}

// TestRunReplicas: with R=2 every block is held by exactly its first two
// owners (and each replica is fetched by its owner).
func TestRunReplicas(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	plan := c.plan(1, map[string]int{"/m/a": 30}, 2000)
	// The Seeds and Token path: a ClusterRing learning the placement from
	// the nodes' Status, trying a dead seed first.
	e := newExecutor(t, Options{Seeds: []string{"127.0.0.1:1", c.nodes[1].member.Addr}, Token: []byte(testToken), Replicas: 2})
	res, err := e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlocksDone != 30 || res.BlocksFetched != 30 || res.OriginBytes != 2*plan.Bytes || len(res.Failed) != 0 {
		t.Errorf("result = %+v", res)
	}
	for _, b := range plan.Blocks {
		want := owners(c.full, b.Key, 2)
		slices.Sort(want)
		got := c.holders(b.Key)
		slices.Sort(got)
		if len(want) != 2 || !slices.Equal(got, want) {
			t.Errorf("%s held by %v, want its two owners %v", b.Key, got, want)
		}
		if n := c.origin.Count(b.Key); n != 2 {
			t.Errorf("%s: %d origin GETs, want 2 (one per replica)", b.Key, n)
		}
	}
}

// TestRunRetriesWithBackoff: failed blocks are retried after 1s, 2s, 4s
// (doubling, capped) and reported once the retries are used up.
func TestRunRetriesWithBackoff(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 1})
	plan := c.plan(1, map[string]int{"/a": 3}, 1000)
	flaky, broken := plan.Blocks[0].Key, plan.Blocks[1].Key
	c.origin.SetFail(func(key string, n int) error {
		if (key == flaky && n <= 2) || key == broken {
			return errors.New("origin says 503")
		}
		return nil
	})
	clock := newAutoClock()
	t0 := clock.Now()
	r := newTestRing(c, clock)
	e := newExecutor(t, Options{Ring: r, Retries: 3, BackoffInitial: time.Second, BackoffMax: 4 * time.Second, ViewRefresh: -1, Clock: clock})
	res, err := e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	times := map[string][]time.Duration{}
	for _, call := range r.node(c.nodes[0].member.Addr).calls() {
		for _, k := range call.keys {
			times[k] = append(times[k], call.at.Sub(t0))
		}
	}
	s := time.Second
	if want := []time.Duration{0, s, 3 * s}; !slices.Equal(times[flaky], want) {
		t.Errorf("flaky block tried at %v, want %v", times[flaky], want)
	}
	if want := []time.Duration{0, s, 3 * s, 7 * s}; !slices.Equal(times[broken], want) {
		t.Errorf("broken block tried at %v, want %v", times[broken], want)
	}
	if res.BlocksDone != 2 || res.BlocksFailed != 1 || res.BytesFailed != 1000 || len(res.Failed) != 1 {
		t.Fatalf("result = %+v", res)
	}
	f := res.Failed[0]
	if f.Key != broken || f.Attempts != 4 || !strings.Contains(f.Error, "origin says 503") ||
		!strings.Contains(f.Error, c.nodes[0].member.Addr) || !slices.Equal(f.Owners, []string{c.nodes[0].member.Addr}) {
		t.Errorf("failed block = %+v", f)
	}
	if res.FilesDone != 0 {
		t.Errorf("files done = %d; the file has a failed block", res.FilesDone)
	}
}

// TestRunOwnerDiesMidway: an owner is killed during a warm-up; its calls
// fail, the ring drops it a little later, and its blocks (those it had
// warmed too) end up on their new owners.
func TestRunOwnerDiesMidway(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	plan := c.plan(1, map[string]int{"/m/a": 30, "/m/b": 30}, 1000)
	c.origin.SetDelay(10 * time.Millisecond)
	// The victim: the node owning most blocks.
	count := map[string]int{}
	for _, b := range plan.Blocks {
		count[owners(c.full, b.Key, 1)[0]]++
	}
	victim := c.nodes[0]
	for _, n := range c.nodes {
		if count[n.member.Addr] > count[victim.member.Addr] {
			victim = n
		}
	}
	after := c.without(victim)

	r := newTestRing(c, clock.Real())
	var (
		mu       sync.Mutex
		killedAt = -1 // Placement calls made when the victim died
	)
	r.placement = func(call int) *ring.Placement {
		mu.Lock()
		defer mu.Unlock()
		// The ring notices the death two placement calls after it.
		if killedAt >= 0 && call > killedAt+2 {
			return after
		}
		return c.full
	}
	var heldBefore []string
	e := newExecutor(t, Options{Ring: r, BatchSize: 4, Concurrency: 1, ViewRefresh: -1, ProgressInterval: time.Nanosecond,
		BackoffInitial: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Retries: 20,
		OnProgress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			if killedAt < 0 && p.BlocksDone >= 15 {
				for _, b := range plan.Blocks {
					if victim.holds(b.Key) {
						heldBefore = append(heldBefore, b.Key)
					}
				}
				victim.stop()
				killedAt = r.placementCalls()
			}
		}})
	res, err := e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if killedAt < 0 {
		t.Fatal("the victim was never killed")
	}
	if count[victim.member.Addr] <= len(heldBefore) {
		t.Fatalf("victim owned %d blocks and had warmed %d when killed: nothing moved mid-way", count[victim.member.Addr], len(heldBefore))
	}
	if res.BlocksDone != 60 || res.BlocksFailed != 0 || len(res.Failed) != 0 {
		t.Errorf("result = %+v", res)
	}
	for _, b := range plan.Blocks {
		o := owners(after, b.Key, 1)[0]
		if !c.node(o).holds(b.Key) {
			t.Errorf("%s is not on its owner %s after the victim died", b.Key, o)
		}
	}
	if len(heldBefore) == 0 {
		t.Error("the victim had warmed none of its blocks when killed: moving done blocks is untested")
	}
	for _, k := range heldBefore {
		if n := c.origin.Count(k); n != 2 {
			t.Errorf("%s, warmed on the victim before it died: %d origin GETs, want 2 (again on its new owner)", k, n)
		}
	}
	t.Logf("victim owned %d blocks, had warmed %d when killed; %d placement calls", count[victim.member.Addr], len(heldBefore), r.placementCalls())
}

// TestRunBandwidthPacing: a budget of 1 MiB/s paces 5 MiB to 4 s of (fake)
// time after a 1 s burst, in batches of at most one second of budget, and
// blocks already cached spend none of it.
func TestRunBandwidthPacing(t *testing.T) {
	const kib, mib = 1 << 10, 1 << 20
	c := newCluster(t, clusterOptions{nodes: 3})
	plan := c.plan(1, map[string]int{"/a": 20, "/b": 8}, 256*kib)
	clock := newAutoClock()
	r := newTestRing(c, clock)
	e := newExecutor(t, Options{Ring: r, Bandwidth: mib, Concurrency: 2, ViewRefresh: -1, Clock: clock})

	// Warm /b first; its blocks are then cached for the full run.
	res, err := e.Run(ctx30s(t), subPlan(plan, "/b"))
	if err != nil || res.BlocksFetched != 8 {
		t.Fatalf("warm of /b: %+v, %v", res, err)
	}
	start := clock.Now()
	res, err = e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := clock.Now().Sub(start)
	if res.BlocksFetched != 20 || res.BlocksCached != 8 || res.OriginBytes != 5*mib {
		t.Fatalf("result = %+v", res.Progress)
	}
	// The budget starts with one second (1 MiB) of burst: the remaining
	// 4 MiB take 4 s. Another run with a fresh budget starts full again.
	if elapsed < 4*time.Second-time.Millisecond || elapsed > 4*time.Second+time.Millisecond {
		t.Errorf("5 MiB at 1 MiB/s (1 MiB burst) took %v, want 4s", elapsed)
	}
	for _, n := range c.nodes {
		for _, call := range r.node(n.member.Addr).calls() {
			if len(call.keys)*256*kib > mib {
				t.Errorf("%s: a Warm call of %d KiB; batches are at most one second of budget", n.member.ID, len(call.keys)*256)
			}
		}
	}
}

// TestRunBandwidthRealClock checks the pacing against real time, with a
// generous bound.
func TestRunBandwidthRealClock(t *testing.T) {
	const kib, mib = 1 << 10, 1 << 20
	c := newCluster(t, clusterOptions{nodes: 2})
	plan := c.plan(1, map[string]int{"/a": 24}, 256*kib) // 6 MiB
	e := newExecutor(t, Options{Ring: newTestRing(c, clock.Real()), Bandwidth: 2 * mib, ViewRefresh: -1})
	start := time.Now()
	res, err := e.Run(ctx30s(t), plan)
	if err != nil || res.BlocksDone != 24 {
		t.Fatalf("%+v, %v", res, err)
	}
	// 2 MiB of burst, then 4 MiB at 2 MiB/s.
	if d := time.Since(start); d < 1900*time.Millisecond || d > 15*time.Second {
		t.Errorf("6 MiB at 2 MiB/s (2 MiB burst) took %v, want about 2s", d)
	}
}

// TestRunFatalErrors: a node that refuses the volume fails the blocks
// without retries.
func TestRunFatalErrors(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 1})
	plan := c.plan(1, map[string]int{"/a": 2}, 1000)
	plan.VolumeUUID = "no-such-volume"
	e := newExecutor(t, Options{Ring: newTestRing(c, clock.Real()), ViewRefresh: -1, BackoffInitial: time.Hour})
	res, err := e.Run(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlocksFailed != 2 || len(res.Failed) != 2 || res.Failed[0].Attempts != 0 || !strings.Contains(res.Failed[0].Error, "unknown volume") {
		t.Errorf("result = %+v", res)
	}
}

// TestRunCancel: a cancelled run returns what it did and the context's
// error, and fails no block for it.
func TestRunCancel(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2})
	plan := c.plan(1, map[string]int{"/a": 40}, 1000)
	c.origin.SetDelay(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newExecutor(t, Options{Ring: newTestRing(c, clock.Real()), BatchSize: 2, Concurrency: 1, ViewRefresh: -1, ProgressInterval: time.Nanosecond,
		OnProgress: func(p Progress) {
			if p.BlocksDone >= 4 {
				cancel()
			}
		}})
	res, err := e.Run(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if res == nil || res.BlocksDone < 4 || res.BlocksDone == 40 || res.BlocksFailed != 0 {
		t.Errorf("result = %+v", res)
	}
}

func TestRunEmptyPlanAndEmptyRing(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 1})
	r := newTestRing(c, clock.Real())
	e := newExecutor(t, Options{Ring: r})
	res, err := e.Run(ctx30s(t), &Plan{Volume: testVolume, VolumeUUID: testUUID, Files: nil})
	if err != nil || res.Blocks != 0 || res.BlocksDone != 0 || res.ETA != 0 {
		t.Errorf("empty plan: %+v, %v", res, err)
	}
	r.placement = func(int) *ring.Placement { return nil }
	if _, err := e.Run(ctx30s(t), &Plan{}); err == nil || !strings.Contains(err.Error(), "no members") {
		t.Errorf("empty ring: %v", err)
	}
}

func TestRateMeterAndETA(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(0, 0)
	m.add(t0, 0)
	if m.rate() != 0 {
		t.Error("rate with one sample")
	}
	for i := 1; i <= 30; i++ {
		m.add(t0.Add(time.Duration(i)*time.Second), int64(i)*100)
	}
	if r := m.rate(); r != 100 {
		t.Errorf("rate = %v, want 100", r)
	}
	if len(m.samples) > 12 {
		t.Errorf("%d samples kept for a 10s window of 1s samples", len(m.samples))
	}
	if d := eta(1000, 100); d != 10*time.Second {
		t.Errorf("eta = %v", d)
	}
	if eta(1, 0) != -1 || eta(0, 0) != 0 {
		t.Error("eta without a rate")
	}
}
