package prefetch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Executor runs warm-ups, checks and dry runs against a ring. It is safe
// for concurrent use; each Run is independent (its own budget).
type Executor struct {
	o    Options
	ring Ring
	own  *ClusterRing // made from Seeds and Token: closed by Close
}

// New returns an executor for o.
func New(o Options) (*Executor, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	e := &Executor{o: o, ring: o.Ring}
	if e.ring == nil {
		cr, err := NewClusterRing(o.Token, o.Seeds...)
		if err != nil {
			return nil, fmt.Errorf("prefetch: %w", err)
		}
		cr.StatusTimeout = min(cr.StatusTimeout, o.CallTimeout)
		e.ring, e.own = cr, cr
	}
	return e, nil
}

// Close releases the clients of a ring the executor made from Seeds.
func (e *Executor) Close() error {
	if e.own != nil {
		return e.own.Close()
	}
	return nil
}

// placement asks the ring for its placement.
func (e *Executor) placement(ctx context.Context) (*ring.Placement, error) {
	cctx, cancel := context.WithTimeout(ctx, e.o.CallTimeout)
	defer cancel()
	p, err := e.ring.Placement(cctx)
	if err != nil {
		return nil, err
	}
	if p.Len() == 0 {
		return nil, errors.New("the ring has no members")
	}
	return p, nil
}

// ownerAddrs returns the peer addresses of the first n owners of ringKey.
func ownerAddrs(p *ring.Placement, ringKey string, n int) []string {
	ms := p.Owners(ringKey, n)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	return out
}

// Run warms the plan's blocks: each block ends up held by its first
// Replicas owners, or is reported in Result.Failed. It returns an error
// only when it cannot start (no placement) or ctx ends; then the Result
// still tells what was done.
func (e *Executor) Run(ctx context.Context, plan *Plan) (*Result, error) {
	if plan == nil {
		return nil, errors.New("prefetch: nil plan")
	}
	view, err := e.placement(ctx)
	if err != nil {
		return nil, fmt.Errorf("prefetch: learn the ring: %w", err)
	}
	return e.newRun(plan, view).run(ctx)
}

type blockState uint8

const (
	stQueued  blockState = iota // being sent, or about to be
	stDelayed                   // waiting for a retry
	stDone
	stFailed
)

// block is one block of a run. Only the run's goroutine touches the
// mutable fields; send goroutines read key, ringKey and size.
type block struct {
	key, ringKey string
	size         int64
	files        []int32 // indexes into Plan.Files

	state    blockState
	owners   []string // owners it was last resolved to
	held     []string // nodes that hold it (this run saw them say so)
	sends    int      // sends to owners queued or in flight
	attempts int      // rounds with a failed send
	fetched  bool     // some owner fetched it from the origin
	counted  bool     // counted as fetched (not cached) when done
	lastErr  string
	due      time.Time // when stDelayed
	heapIdx  int

	// Outcome of the current round's sends.
	sendFailed, deferred, fatal bool
}

type outcome uint8

const (
	outFailed outcome = iota
	outCached
	outFetched
)

// batch is one call to an owner and its outcome.
type batch struct {
	addr   string
	blocks []*block
	out    []outcome
	errs   []string
	err    error // the call failed: out and errs mean nothing
}

type run struct {
	e       *Executor
	o       *Options
	clock   Clock
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
		timerAt time.Time
		timerC  <-chan time.Time
		checks  int
	)
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
		if at, ok := r.nextWake(); !ok {
			timerC = nil
		} else if timerC == nil || !at.Equal(timerAt) {
			timerAt, timerC = at, r.clock.After(max(at.Sub(r.clock.Now()), 0))
		}
		select {
		case bt := <-r.results:
			r.handle(bt)
		case <-timerC:
			timerC = nil
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

func (r *run) heldByOwners(b *block) bool {
	for _, a := range ownerAddrs(r.view, b.ringKey, r.o.Replicas) {
		if !slices.Contains(b.held, a) {
			return false
		}
	}
	return true
}

// resolve sends b to those of its current owners that are not known to
// hold it, or completes it.
func (r *run) resolve(b *block) {
	b.state = stQueued
	b.owners = ownerAddrs(r.view, b.ringKey, r.o.Replicas)
	for _, a := range b.owners {
		if !slices.Contains(b.held, a) {
			r.queues[a] = append(r.queues[a], b)
			b.sends++
		}
	}
	if b.sends == 0 {
		r.complete(b)
	}
}

func (r *run) complete(b *block) {
	b.state = stDone
	b.counted = b.fetched
	r.prog.BlocksDone++
	r.prog.BytesDone += b.size
	if b.counted {
		r.prog.BlocksFetched++
	} else {
		r.prog.BlocksCached++
	}
	for _, f := range b.files {
		if r.fileLeft[f]--; r.fileLeft[f] == 0 {
			r.prog.FilesDone++
		}
	}
}

// reopen undoes complete.
func (r *run) reopen(b *block) {
	b.state = stQueued
	r.prog.BlocksDone--
	r.prog.BytesDone -= b.size
	if b.counted {
		r.prog.BlocksFetched--
	} else {
		r.prog.BlocksCached--
	}
	for _, f := range b.files {
		if r.fileLeft[f] == 0 {
			r.prog.FilesDone--
		}
		r.fileLeft[f]++
	}
}

func (r *run) fail(b *block) {
	b.state = stFailed
	r.prog.BlocksFailed++
	r.prog.BytesFailed += b.size
	r.log.Warn("block failed", "key", b.key, "attempts", b.attempts, "err", b.lastErr)
}

// settle decides what comes next for b once all its sends of a round are
// back.
func (r *run) settle(b *block) {
	failed, deferred, fatal := b.sendFailed, b.deferred, b.fatal
	b.sendFailed, b.deferred, b.fatal = false, false, false
	switch {
	case fatal:
		r.fail(b)
	case r.stopping && (failed || deferred):
		// Neither done nor failed: the run was stopped.
	case failed:
		b.attempts++
		if b.attempts > r.retries {
			r.fail(b)
			return
		}
		r.delay(b, r.backoff(b.attempts))
	case deferred:
		r.delay(b, r.backoff(max(b.attempts, 1)))
	default:
		r.resolve(b) // done, unless its owners changed meanwhile
	}
}

// backoff is the wait before retry n (1-based).
func (r *run) backoff(n int) time.Duration {
	d := r.o.BackoffInitial
	for i := 1; i < n && d < r.o.BackoffMax; i++ {
		d *= 2
	}
	return min(d, r.o.BackoffMax)
}

func (r *run) delay(b *block, d time.Duration) {
	b.state = stDelayed
	b.due = r.clock.Now().Add(d)
	heap.Push(&r.delayed, b)
}

// dispatch starts calls to owners with queued blocks, up to Concurrency
// per owner.
func (r *run) dispatch(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	for addr, q := range r.queues {
		for len(q) > 0 && r.inflight[addr] < r.o.Concurrency {
			n := r.cut(q)
			bt := &batch{addr: addr, blocks: q[:n:n]}
			q = q[n:]
			r.inflight[addr]++
			r.nInflight++
			go r.send(ctx, bt)
		}
		if len(q) == 0 {
			delete(r.queues, addr)
		} else {
			r.queues[addr] = q
		}
	}
}

// cut returns how many blocks from the head of q make the next batch: at
// most BatchSize, and with a budget at most one second of it (at least one
// block).
func (r *run) cut(q []*block) int {
	n, bytes := 0, int64(0)
	for n < len(q) && n < r.o.BatchSize {
		if r.maxBatchBytes > 0 && n > 0 && bytes+q[n].size > r.maxBatchBytes {
			break
		}
		bytes += q[n].size
		n++
	}
	return n
}

// send makes one batch's calls: Has, then Warm for the keys the owner
// lacks, paced by the budget. It runs in its own goroutine and reports on
// r.results.
func (r *run) send(ctx context.Context, bt *batch) {
	defer func() { r.results <- bt }()
	bt.out = make([]outcome, len(bt.blocks))
	bt.errs = make([]string, len(bt.blocks))
	node, err := r.e.ring.Node(bt.addr)
	if err != nil {
		bt.err = err
		return
	}
	keys := make([]string, len(bt.blocks))
	for i, b := range bt.blocks {
		keys[i] = b.key
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	sizes, err := node.Has(cctx, r.plan.VolumeUUID, keys)
	cancel()
	if err == nil && len(sizes) != len(keys) {
		err = fmt.Errorf("%w: %d sizes for %d keys", peer.ErrProtocol, len(sizes), len(keys))
	}
	if err != nil {
		bt.err = fmt.Errorf("has: %w", err)
		return
	}
	var missing []int
	var bytes int64
	for i, s := range sizes {
		if s >= 0 {
			bt.out[i] = outCached
		} else {
			missing = append(missing, i)
			bytes += bt.blocks[i].size
		}
	}
	if len(missing) == 0 {
		return
	}
	if err := r.pace(ctx, bytes); err != nil {
		bt.err = err
		return
	}
	mk := make([]string, len(missing))
	for j, i := range missing {
		mk[j] = keys[i]
	}
	cctx, cancel = context.WithTimeout(ctx, r.o.CallTimeout)
	res, err := node.Warm(cctx, r.plan.VolumeUUID, mk)
	cancel()
	if err == nil && len(res) != len(mk) {
		err = fmt.Errorf("%w: %d results for %d keys", peer.ErrProtocol, len(res), len(mk))
	}
	if err != nil {
		bt.err = fmt.Errorf("warm: %w", err)
		return
	}
	for j, w := range res {
		i := missing[j]
		switch {
		case w.GetKey() != mk[j]:
			bt.out[i], bt.errs[i] = outFailed, fmt.Sprintf("node answered for key %q", w.GetKey())
		case w.State == peerpb.WarmResult_STATE_CACHED:
			bt.out[i] = outCached
		case w.State == peerpb.WarmResult_STATE_FETCHED:
			bt.out[i] = outFetched
		case w.State == peerpb.WarmResult_STATE_FAILED:
			bt.out[i], bt.errs[i] = outFailed, w.Error
		default:
			bt.out[i], bt.errs[i] = outFailed, fmt.Sprintf("unexpected warm state %v", w.State)
		}
	}
}

// pace waits until the budget allows n more bytes.
func (r *run) pace(ctx context.Context, n int64) error {
	if r.limiter == nil || n <= 0 {
		return nil
	}
	r.limMu.Lock()
	now := r.clock.Now()
	var last *rate.Reservation
	for left := n; left > 0; {
		k := min(left, r.burst)
		last = r.limiter.ReserveN(now, int(k))
		left -= k
	}
	wake := now.Add(last.DelayFrom(now))
	r.limMu.Unlock()
	d := wake.Sub(r.clock.Now())
	if d <= 0 {
		return nil
	}
	select {
	case <-r.clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ownerFailure reports whether a failed call means the node may be gone or
// overloaded (retry, perhaps on another owner) rather than refusing the
// request for good.
func ownerFailure(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.Unauthenticated, codes.PermissionDenied,
		codes.Unimplemented, codes.FailedPrecondition, codes.OutOfRange:
		return false
	}
	return !errors.Is(err, peer.ErrProtocol)
}

// handle takes a batch's outcome.
func (r *run) handle(bt *batch) {
	if r.inflight[bt.addr]--; r.inflight[bt.addr] == 0 {
		delete(r.inflight, bt.addr)
	}
	r.nInflight--
	if bt.err != nil {
		retry := ownerFailure(bt.err)
		msg := fmt.Sprintf("%s: %v", bt.addr, bt.err)
		if !r.stopping {
			r.log.Warn("call to owner failed", "owner", bt.addr, "keys", len(bt.blocks), "err", bt.err, "retry", retry)
		}
		for _, b := range bt.blocks {
			b.sends--
			b.lastErr = msg
			if retry {
				b.sendFailed = true
			} else {
				b.fatal = true
			}
		}
		if retry {
			r.ownerDown(bt.addr)
		}
		for _, b := range bt.blocks {
			if b.sends == 0 {
				r.settle(b)
			}
		}
		return
	}
	for i, b := range bt.blocks {
		b.sends--
		switch bt.out[i] {
		case outCached:
			b.addHeld(bt.addr)
		case outFetched:
			b.addHeld(bt.addr)
			b.fetched = true
			r.prog.OriginBytes += b.size
		default:
			b.sendFailed = true
			b.lastErr = fmt.Sprintf("%s: %s", bt.addr, bt.errs[i])
		}
		if b.sends == 0 {
			r.settle(b)
		}
	}
}

func (b *block) addHeld(addr string) {
	if !slices.Contains(b.held, addr) {
		b.held = append(b.held, addr)
	}
}

// ownerDown takes back the blocks queued for an owner whose call failed:
// they wait out a backoff, then go to whoever owns them then.
func (r *run) ownerDown(addr string) {
	r.stale = true
	q := r.queues[addr]
	delete(r.queues, addr)
	for _, b := range q {
		b.sends--
		b.deferred = true
	}
	for _, b := range q {
		if b.sends == 0 {
			r.settle(b)
		}
	}
}

// emit calls OnProgress if ProgressInterval has passed (or force).
func (r *run) emit(force bool) {
	now := r.clock.Now()
	if !force && now.Sub(r.lastEmit) < r.o.ProgressInterval {
		return
	}
	r.lastEmit = now
	p := r.prog
	p.Elapsed = now.Sub(r.start)
	r.meter.add(now, p.BytesDone)
	p.Rate = r.meter.rate()
	p.ETA = eta(p.Remaining(), p.Rate)
	if r.o.OnProgress != nil {
		r.o.OnProgress(p)
	}
}

// result is the run's Result; it also goes to OnProgress.
func (r *run) result() *Result {
	now := r.clock.Now()
	p := r.prog
	p.Elapsed = now.Sub(r.start)
	if p.Elapsed > 0 {
		p.Rate = float64(p.BytesDone) / p.Elapsed.Seconds()
	}
	p.ETA = eta(p.Remaining(), p.Rate)
	res := &Result{Progress: p, Failed: []FailedBlock{}}
	for _, b := range r.blocks {
		if b.state == stFailed {
			res.Failed = append(res.Failed, FailedBlock{Key: b.key, Size: b.size, Owners: b.owners, Attempts: b.attempts, Error: b.lastErr})
		}
	}
	if r.o.OnProgress != nil {
		r.o.OnProgress(p)
	}
	return res
}

// delayHeap orders delayed blocks by due time.
type delayHeap []*block

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	return h[i].due.Before(h[j].due)
}
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *delayHeap) Push(x any) {
	b := x.(*block)
	b.heapIdx = len(*h)
	*h = append(*h, b)
}
func (h *delayHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	b.heapIdx = -1
	return b
}
