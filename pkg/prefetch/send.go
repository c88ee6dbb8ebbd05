package prefetch

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

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
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
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
