package ringstore

import (
	"errors"
	"sync"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// ErrReadTimeout is returned (wrapped, with the block and the cause) for a
// block Get that ran out of the block's read budget.
var ErrReadTimeout = errors.New("block read timed out")

// maxStreaks is how many blocks may be failing at once before expired
// entries are swept on the next new one.
const maxStreaks = 4096

// budgets bounds the time spent on one block across the Gets of it until
// one succeeds. JuiceFS retries a block read whose Get failed (10 times
// by default, pkg/vfs/reader.go), so a per-Get deadline alone multiplies:
// with a frozen origin every retry waited for its own timeout. Here the
// first Get of a block starts a streak with a deadline; every Get of the
// block until one succeeds shares it, and once it has passed, Gets for
// window more are probes of probe each: the read ends soon, and a probe
// that finds the origin back ends the streak.
type budgets struct {
	budget, probe, window time.Duration
	clock                 clock.Clock

	mu sync.Mutex
	m  map[string]*streak
}

// streak is one block's run of Gets without a success.
type streak struct {
	start, deadline time.Time
	logged          bool // the give-up was logged
}

func newBudgets(budget, probe, window time.Duration, c clock.Clock) *budgets {
	return &budgets{budget: budget, probe: probe, window: window, clock: c, m: map[string]*streak{}}
}

// begin returns the deadline of a Get of key starting now, the streak it
// belongs to, and whether it is a probe (the budget was spent before).
func (b *budgets) begin(key string) (deadline time.Time, st *streak, probe bool) {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	st = b.m[key]
	if st != nil && now.After(st.deadline.Add(b.window)) {
		st = nil
	}
	if st == nil {
		if len(b.m) >= maxStreaks {
			b.sweep(now)
		}
		st = &streak{start: now, deadline: now.Add(b.budget)}
		b.m[key] = st
	}
	if now.Before(st.deadline) {
		return st.deadline, st, false
	}
	return now.Add(b.probe), st, true
}

// end records how a Get of key in st ended. A success ends the streak. It
// reports whether this is the first failure after the budget was spent
// (the one to log).
func (b *budgets) end(key string, st *streak, err error) (gaveUp bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		if b.m[key] == st {
			delete(b.m, key)
		}
		return false
	}
	if !st.logged && !b.clock.Now().Before(st.deadline) {
		st.logged = true
		return true
	}
	return false
}

// sweep drops streaks past their window.
func (b *budgets) sweep(now time.Time) {
	for k, st := range b.m {
		if now.After(st.deadline.Add(b.window)) {
			delete(b.m, k)
		}
	}
}

// len is the number of live streaks (for tests).
func (b *budgets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
