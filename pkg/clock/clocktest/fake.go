// Package clocktest owns the fake clock tests drive instead of sleeping:
// time moves only when the test calls Advance or Set, and BlockUntil lets
// a test wait until the code under test has armed its timers, so "nothing
// happened before the deadline" is asserted at a known instant.
package clocktest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// Fake is a clock.Clock whose time moves only when told. The zero value
// is not usable; use New.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
	changed chan struct{} // closed and replaced whenever waiters change
}

var _ clock.Clock = (*Fake)(nil)

// New returns a fake clock reading now.
func New(now time.Time) *Fake {
	return &Fake{now: now, changed: make(chan struct{})}
}

type waiter struct {
	f      *Fake
	at     time.Time
	period time.Duration // >0 for tickers
	fn     func()        // AfterFunc
	c      chan time.Time
	active bool
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer firing once the fake time reaches now+d.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	w := &waiter{f: f, c: make(chan time.Time, 1)}
	f.arm(w, d)
	return (*fakeTimer)(w)
}

// AfterFunc calls fn in its own goroutine once the fake time reaches now+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer {
	w := &waiter{f: f, fn: fn}
	f.arm(w, d)
	return (*fakeTimer)(w)
}

// NewTicker returns a ticker firing every d of fake time.
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive interval for NewTicker")
	}
	w := &waiter{f: f, c: make(chan time.Time, 1), period: d}
	f.arm(w, d)
	return (*fakeTicker)(w)
}

// Advance moves the fake time forward by d, firing every timer and
// ticker due on the way in deadline order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.Set(target)
}

// Set moves the fake time to t (never backwards), firing what is due.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		w := f.nextDue(t)
		if w == nil {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		if w.at.After(f.now) {
			f.now = w.at
		}
		at := w.at
		if w.period > 0 {
			w.at = w.at.Add(w.period)
			if !w.at.After(t) && !f.othersDue(w, t) {
				// Only this ticker is due until t: its ticks before t
				// would find the channel full (nobody can receive while
				// Set runs them back to back), so skip them at once
				// rather than one period at a time.
				w.at = w.at.Add(t.Sub(w.at)/w.period*w.period + w.period)
			}
		} else {
			f.remove(w)
		}
		fn, c := w.fn, w.c
		f.mu.Unlock()
		if fn != nil {
			go fn()
		} else {
			select {
			case c <- at:
			default: // like time.Ticker: a slow receiver misses ticks
			}
		}
	}
}

// othersDue reports whether a waiter other than w is due by t. f.mu held.
func (f *Fake) othersDue(w *waiter, t time.Time) bool {
	for _, x := range f.waiters {
		if x != w && !x.at.After(t) {
			return true
		}
	}
	return false
}

// Waiters returns how many timers and tickers are armed.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil waits until at least n timers and tickers are armed, or ctx
// ends (then it returns ctx's error).
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		got, changed := len(f.waiters), f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// nextDue returns the armed waiter with the earliest deadline not after
// t. f.mu held.
func (f *Fake) nextDue(t time.Time) *waiter {
	if len(f.waiters) == 0 {
		return nil
	}
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	if w := f.waiters[0]; !w.at.After(t) {
		return w
	}
	return nil
}

// arm (re)arms w to fire d from now. Like time.Timer since Go 1.23, a
// value not yet received is dropped.
func (f *Fake) arm(w *waiter, d time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	drain(w.c)
	was := w.active
	w.at = f.now.Add(d)
	if !was {
		w.active = true
		f.waiters = append(f.waiters, w)
		f.notify()
	}
	return was
}

func (f *Fake) disarm(w *waiter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	drain(w.c)
	was := w.active
	if was {
		f.remove(w)
	}
	return was
}

func drain(c chan time.Time) {
	select {
	case <-c:
	default:
	}
}

// remove takes w off the armed list. f.mu held.
func (f *Fake) remove(w *waiter) {
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			break
		}
	}
	w.active = false
	f.notify()
}

// notify wakes BlockUntil callers. f.mu held.
func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer waiter

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool { return t.f.disarm((*waiter)(t)) }

func (t *fakeTimer) Reset(d time.Duration) bool { return t.f.arm((*waiter)(t), d) }

type fakeTicker waiter

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() { t.f.disarm((*waiter)(t)) }

func (t *fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clocktest: non-positive interval for Ticker.Reset")
	}
	w := (*waiter)(t)
	t.f.mu.Lock()
	w.period = d
	t.f.mu.Unlock()
	t.f.arm(w, d)
}
