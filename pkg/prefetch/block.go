package prefetch

import (
	"container/heap"
	"slices"
	"time"
)

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

func (b *block) addHeld(addr string) {
	if !slices.Contains(b.held, addr) {
		b.held = append(b.held, addr)
	}
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
