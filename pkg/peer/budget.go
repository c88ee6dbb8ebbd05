package peer

import (
	"context"
	"sync"

	"github.com/ringcache/ringcache/pkg/admit"
)

// byteBudget bounds the bytes of answers a server holds at once, over
// both transports, and the share of them one remote host may hold: a
// caller waits for room (first come, first served among the hosts under
// their share) or for its context. Without the share one client that
// never reads its answers pins the whole budget and every other reader
// waits.
type byteBudget struct {
	mu      sync.Mutex
	free    int64
	cap     int64
	share   int64            // most one host holds, unless it holds nothing
	held    map[string]int64 // by host
	waiters []*budgetWaiter
	changed admit.Signal // signals a change of waiters or held bytes (changes)
}

type budgetWaiter struct {
	host  string
	n     int64
	ready chan struct{}
}

// newByteBudget returns a budget of n bytes of which one host may hold
// share (at least one answer, whatever its size; share >= n: no limit).
func newByteBudget(n, share int64) *byteBudget {
	return &byteBudget{free: n, cap: n, share: share, held: map[string]int64{}}
}

// acquire takes n bytes (at most the whole budget) for the caller of ctx
// (its host, callerHost) and returns the function that gives them back.
func (b *byteBudget) acquire(ctx context.Context, n int64) (func(), error) {
	n = min(max(n, 1), b.cap)
	w := &budgetWaiter{host: callerHost(ctx), n: n, ready: make(chan struct{})}
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.grant()
	b.notify()
	b.mu.Unlock()
	select {
	case <-w.ready:
		return b.releaser(w), nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.give(w)
		default:
			for i, x := range b.waiters {
				if x == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.grant() // the head may have changed
			b.notify()
		}
		return nil, ctx.Err()
	}
}

func (b *byteBudget) releaser(w *budgetWaiter) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.give(w)
			b.mu.Unlock()
		})
	}
}

// give returns w's bytes. b.mu is held.
func (b *byteBudget) give(w *budgetWaiter) {
	b.free += w.n
	if b.held[w.host] -= w.n; b.held[w.host] <= 0 {
		delete(b.held, w.host)
	}
	b.grant()
	b.notify()
}

// grant wakes waiters in order while they fit, passing over those whose
// host holds its share (they wait for their own answers to go). b.mu is
// held.
func (b *byteBudget) grant() {
	for i := 0; i < len(b.waiters); {
		w := b.waiters[i]
		if h := b.held[w.host]; h > 0 && h+w.n > b.share && b.share < b.cap {
			i++
			continue
		}
		if b.free < w.n {
			return // the first that fits its host's share waits for room
		}
		b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
		b.free -= w.n
		b.held[w.host] += w.n
		close(w.ready)
	}
}

// changes returns a channel closed the next time a caller queues, is
// granted bytes, gives up or gives bytes back. To wait for a state without
// missing a change, get the channel first, then check.
func (b *byteBudget) changes() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed.Chan()
}

// notify closes the channel of changes. b.mu is held.
func (b *byteBudget) notify() {
	b.changed.Notify()
}
