package prefetch

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/ring"
)

// run is one warm-up in progress: the blocks of a plan, their queues per
// owner, the calls in flight, the retry heap and the progress. Only the
// goroutine of run.run changes it; send goroutines report on results.
type run struct {
	e       *Executor
	o       *Options
	clock   clock.Clock
	log     *slog.Logger
	plan    *Plan
	retries int

	view        *ring.Placement
	blocks      []*block
	fileLeft    []int // per file: blocks not done
	queues      map[string][]*block
	inflight    map[string]int
	nInflight   int
	delayed     delayHeap
	results     chan *batch
	stale       bool // a call failed since the placement was last asked for
	stopping    bool
	nextRefresh time.Time

	limiter       *rate.Limiter
	limMu         sync.Mutex
	burst         int64
	maxBatchBytes int64 // 0: no limit

	prog            Progress
	start, lastEmit time.Time
	meter           rateMeter
}

func (e *Executor) newRun(plan *Plan, view *ring.Placement) *run {
	r := &run{
		e: e, o: &e.o, clock: e.o.Clock, plan: plan, view: view,
		retries:  max(e.o.Retries, 0),
		queues:   map[string][]*block{},
		inflight: map[string]int{},
		results:  make(chan *batch),
		fileLeft: make([]int, len(plan.Files)),
	}
	r.log = e.o.Logger.With("volume", plan.Volume)
	byKey := make(map[string]*block, len(plan.Blocks))
	var maxBlock int64
	for _, b := range plan.Blocks {
		if byKey[b.Key] != nil {
			continue
		}
		blk := &block{key: b.Key, ringKey: blockkey.Ring(plan.VolumeUUID, b.Key), size: b.Size}
		byKey[b.Key] = blk
		r.blocks = append(r.blocks, blk)
		r.prog.Bytes += b.Size
		maxBlock = max(maxBlock, b.Size)
	}
	for fi, f := range plan.Files {
		for _, b := range f.Blocks {
			blk := byKey[b.Key]
			if blk == nil || (len(blk.files) > 0 && blk.files[len(blk.files)-1] == int32(fi)) {
				continue
			}
			blk.files = append(blk.files, int32(fi))
			r.fileLeft[fi]++
		}
		if r.fileLeft[fi] == 0 {
			r.prog.FilesDone++
		}
	}
	r.prog.Files, r.prog.Blocks = len(plan.Files), len(r.blocks)
	if bw := e.o.Bandwidth; bw > 0 {
		r.burst = max(bw, maxBlock, 1)
		r.limiter = rate.NewLimiter(rate.Limit(bw), int(r.burst))
		r.maxBatchBytes = bw
	}
	return r
}

// maxFinalChecks bounds how often a run that has nothing left asks for the
// placement again and finds blocks to move.
const maxFinalChecks = 3

func (r *run) run(ctx context.Context) (*Result, error) {
	r.start = r.clock.Now()
	r.lastEmit = r.start
	r.meter.add(r.start, 0)
	r.nextRefresh = r.start.Add(r.o.ViewRefresh)
	r.log.Info("warm-up starting", "files", r.prog.Files, "blocks", r.prog.Blocks, "bytes", r.prog.Bytes,
		"members", r.view.Len(), "replicas", r.o.Replicas, "bandwidth", r.o.Bandwidth)
	if r.o.Replicas > r.view.Len() {
		r.log.Warn("fewer ring members than replicas: every member will hold every block", "members", r.view.Len(), "replicas", r.o.Replicas)
	}
	r.emit(true)
	for _, b := range r.blocks {
		r.resolve(b)
	}
	var (
		timer   clock.Timer // fires at timerAt; nil when none is armed
		timerAt time.Time
		checks  int
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		r.dispatch(ctx)
		r.emit(false)
		if !r.busy() {
			if checks < maxFinalChecks {
				checks++
				r.refresh(ctx)
				if r.busy() {
					continue
				}
			}
			break
		}
		if at, ok := r.nextWake(); !ok || timer == nil || !at.Equal(timerAt) {
			if timer != nil {
				timer.Stop()
				timer = nil
			}
			if ok {
				timerAt, timer = at, r.clock.NewTimer(max(at.Sub(r.clock.Now()), 0))
			}
		}
		var timerC <-chan time.Time // nil (never ready) without a timer
		if timer != nil {
			timerC = timer.C()
		}
		select {
		case bt := <-r.results:
			r.handle(bt)
		case <-timerC:
			timer = nil
			r.wake(ctx)
		case <-ctx.Done():
			// Sends end promptly: their calls carry ctx. What they
			// finished still counts; nothing more is sent or failed.
			r.stopping = true
			for r.nInflight > 0 {
				r.handle(<-r.results)
			}
			res := r.result()
			r.log.Warn("warm-up stopped", "err", ctx.Err(), "blocks_done", res.BlocksDone, "blocks", res.Blocks)
			return res, ctx.Err()
		}
	}
	res := r.result()
	r.log.Info("warm-up finished", "blocks_done", res.BlocksDone, "blocks_cached", res.BlocksCached,
		"blocks_fetched", res.BlocksFetched, "blocks_failed", res.BlocksFailed, "bytes_done", res.BytesDone,
		"origin_bytes", res.OriginBytes, "elapsed", res.Elapsed)
	return res, nil
}

// busy reports whether any block is being sent or waits for a retry.
func (r *run) busy() bool { return r.nInflight > 0 || len(r.delayed) > 0 || len(r.queues) > 0 }

// nextWake is when the run has to act without a call returning.
func (r *run) nextWake() (time.Time, bool) {
	var at time.Time
	ok := false
	if len(r.delayed) > 0 {
		at, ok = r.delayed[0].due, true
	}
	if r.o.ViewRefresh > 0 && (!ok || r.nextRefresh.Before(at)) {
		at, ok = r.nextRefresh, true
	}
	return at, ok
}

// wake retries the blocks whose backoff is over, with a fresh placement
// if a call failed since the last one, and refreshes the placement when
// ViewRefresh is due.
func (r *run) wake(ctx context.Context) {
	now := r.clock.Now()
	var due []*block
	for len(r.delayed) > 0 && !r.delayed[0].due.After(now) {
		due = append(due, heap.Pop(&r.delayed).(*block))
	}
	if (len(due) > 0 && r.stale) || (r.o.ViewRefresh > 0 && !now.Before(r.nextRefresh)) {
		r.refresh(ctx)
	}
	for _, b := range due {
		r.resolve(b)
	}
}

// refresh asks for the placement. If it changed, sends not yet made go to
// the new owners, and done blocks whose owners changed are warmed again.
func (r *run) refresh(ctx context.Context) {
	p, err := r.e.placement(ctx)
	r.stale = false
	r.nextRefresh = r.clock.Now().Add(r.o.ViewRefresh)
	if err != nil {
		r.log.Warn("asking for the ring placement failed, keeping the last one", "err", err)
		return
	}
	if samePlacement(p, r.view) {
		return
	}
	r.log.Info("ring placement changed", "members_before", r.view.Len(), "members", p.Len())
	r.view = p
	var requeue []*block
	for addr, q := range r.queues {
		for _, b := range q {
			if b.sends--; b.sends == 0 {
				requeue = append(requeue, b)
			}
		}
		delete(r.queues, addr)
	}
	for _, b := range requeue {
		r.settle(b)
	}
	moved := 0
	for _, b := range r.blocks {
		if b.state == stDone && !r.heldByOwners(b) {
			r.reopen(b)
			r.resolve(b)
			moved++
		}
	}
	if moved > 0 {
		r.log.Info("warming blocks again on their new owners", "blocks", moved)
	}
}
