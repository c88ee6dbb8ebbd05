package admit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func ctx10s(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSlots(t *testing.T, o SlotsOptions) *Slots {
	t.Helper()
	s, err := NewSlots(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// counts returns held, waiting and queued of s, and host's held and queued.
func (s *Slots) counts(host string) [5]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return [5]int{s.held, s.waiting, s.queued, s.heldBy[host], s.queuedBy[host]}
}

// TestSlotsTotalAndPerHost: at most Max held in all and PerHost by one
// host; TryAcquire never waits; a release frees a slot once, however often
// it is called, and empty hosts leave the tables.
func TestSlotsTotalAndPerHost(t *testing.T) {
	s := newSlots(t, SlotsOptions{Max: 3, PerHost: 2, MaxWaiting: -1})
	a1, ok1 := s.TryAcquire("a")
	_, ok2 := s.TryAcquire("a")
	if !ok1 || !ok2 {
		t.Fatal("host a refused under its limit")
	}
	if _, ok := s.TryAcquire("a"); ok {
		t.Fatal("host a got a third slot, per-host limit 2")
	}
	b1, ok := s.TryAcquire("b")
	if !ok {
		t.Fatal("host b refused with a slot free")
	}
	if _, ok := s.TryAcquire("c"); ok {
		t.Fatal("host c got a fourth slot, limit 3")
	}
	if _, err := s.Join("c"); !errors.Is(err, ErrFull) {
		t.Fatalf("Join with no slot and no line: %v, want ErrFull", err)
	}
	a1()
	a1() // once only
	if got := s.Held(); got != 2 {
		t.Fatalf("held %d after one release called twice, want 2", got)
	}
	if _, ok := s.TryAcquire("c"); !ok {
		t.Fatal("host c refused after a release")
	}
	b1()
	if got := s.counts("b"); got[3] != 0 || got[4] != 0 || len(s.heldBy) != 2 {
		t.Fatalf("counts after b left: %v, hosts %v", got, s.heldBy)
	}
}

// TestSlotsWaitForRelease: a caller with no free slot waits in line and
// takes the slot a release frees; one over MaxWaiting is refused at once;
// a waiter whose context ends leaves the line.
func TestSlotsWaitForRelease(t *testing.T) {
	s := newSlots(t, SlotsOptions{Max: 1, MaxWaiting: 1})
	release, err := s.Acquire(ctx10s(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Join("b")
	if err != nil || c.Held() {
		t.Fatalf("Join with the slot held: held %v, %v; want in line", c != nil && c.Held(), err)
	}
	if _, err := s.Join("c"); !errors.Is(err, ErrFull) {
		t.Fatalf("second in a line of 1: %v, want ErrFull", err)
	}
	got := make(chan error, 1)
	go func() { got <- c.Wait(ctx10s(t)) }()
	changed := s.Changed()
	release()
	<-changed
	changed = s.Changed()
	if err := <-got; err != nil || !c.Held() {
		t.Fatalf("waiter after the release: %v, held %v", err, c.Held())
	}
	if n := s.counts("b"); n != [5]int{1, 0, 1, 1, 1} {
		t.Fatalf("counts %v", n)
	}
	<-changed // closed when the waiter took the slot

	ctx, cancel := context.WithCancel(context.Background())
	c2, err := s.Join("c")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := c2.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if err := c2.Wait(ctx10s(t)); !errors.Is(err, ErrReleased) {
		t.Fatalf("Wait after leaving: %v", err)
	}
	c.Release()
	if n := s.counts("c"); n != [5]int{} || len(s.queuedBy) != 0 {
		t.Fatalf("counts after everyone left: %v, %v", n, s.queuedBy)
	}
}

// TestSlotsWaitTimeout: a waiter is refused with ErrTimeout once Wait has
// passed on the clock, not before.
func TestSlotsWaitTimeout(t *testing.T) {
	clk := clocktest.New(t0)
	s := newSlots(t, SlotsOptions{Max: 1, Wait: time.Second, Clock: clk})
	if _, ok := s.TryAcquire("a"); !ok {
		t.Fatal("first slot refused")
	}
	got := make(chan error, 1)
	go func() {
		_, err := s.Acquire(context.Background(), "b")
		got <- err
	}()
	if err := clk.BlockUntil(ctx10s(t), 1); err != nil {
		t.Fatal("the waiter armed no timer:", err)
	}
	clk.Advance(time.Second - time.Nanosecond)
	select {
	case err := <-got:
		t.Fatalf("refused before the wait was over: %v", err)
	default:
	}
	clk.Advance(time.Nanosecond)
	if err := <-got; !errors.Is(err, ErrTimeout) {
		t.Fatalf("after the wait: %v, want ErrTimeout", err)
	}
	if s.Waiting() != 0 || clk.Waiters() != 0 {
		t.Fatalf("%d waiting, %d timers after the timeout", s.Waiting(), clk.Waiters())
	}
}

// TestSlotsQueuedBounds: MaxQueued and MaxQueuedPerHost count callers
// holding and waiting: a host at its bound is refused even with a slot
// free for others (the peer's batch-call rule: as many may wait as run).
func TestSlotsQueuedBounds(t *testing.T) {
	s := newSlots(t, SlotsOptions{Max: 4, PerHost: 1, MaxWaiting: 8, MaxQueued: 8, MaxQueuedPerHost: 2})
	var claims []*Claim
	join := func(host string) error {
		c, err := s.Join(host)
		if err == nil {
			claims = append(claims, c)
		}
		return err
	}
	for _, h := range []string{"a", "a"} {
		if err := join(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := join("a"); !errors.Is(err, ErrFull) {
		t.Fatalf("third from a (1 holding, 1 waiting, bound 2): %v", err)
	}
	if _, ok := s.TryAcquire("a"); ok {
		t.Fatal("TryAcquire for a host at its queued bound")
	}
	for _, h := range []string{"b", "b", "c", "c", "d", "d"} {
		if err := join(h); err != nil {
			t.Fatal(h, err)
		}
	}
	if err := join("e"); !errors.Is(err, ErrFull) {
		t.Fatalf("ninth caller, MaxQueued 8: %v", err)
	}
	if n := s.counts("a"); n[0] != 4 || n[1] != 4 || n[2] != 8 {
		t.Fatalf("held, waiting, queued %v", n)
	}
	for _, c := range claims {
		c.Release()
	}
	if n := s.counts("a"); n != [5]int{} {
		t.Fatalf("counts after release: %v", n)
	}
}

func TestSlotsOptions(t *testing.T) {
	o := SlotsOptions{Max: 8}
	o.EnsureDefaults()
	if o.PerHost != 8 || o.MaxWaiting != 8 || o.MaxQueued != 16 || o.MaxQueuedPerHost != 16 || o.Clock == nil {
		t.Fatalf("defaults %+v", o)
	}
	again := o
	again.EnsureDefaults()
	if again != o {
		t.Fatal("EnsureDefaults is not idempotent")
	}
	none := SlotsOptions{Max: 2, MaxWaiting: -1}
	none.EnsureDefaults()
	if none.MaxQueued != 2 || none.MaxQueuedPerHost != 2 {
		t.Fatalf("no line: %+v", none)
	}
	_, err := NewSlots(SlotsOptions{PerHost: -1, Wait: -time.Second})
	if err == nil || !strings.HasPrefix(err.Error(), "admit: invalid options: ") ||
		!strings.Contains(err.Error(), "max 0") || !strings.Contains(err.Error(), "per-host -1") || !strings.Contains(err.Error(), "wait -1s") {
		t.Fatalf("invalid options: %v", err)
	}
}

// FuzzSlots runs a sequence of joins, tries, waits and releases from a
// few hosts and checks the bounds after each step.
func FuzzSlots(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x10, 0x21, 0x32, 0x40, 0x51})
	f.Add([]byte{4, 4, 4, 4, 4, 4, 0x84, 0x85, 0x86, 0x30, 0x31, 0x20})
	f.Fuzz(func(t *testing.T, ops []byte) {
		o := SlotsOptions{Max: 3, PerHost: 2, MaxWaiting: 2, MaxQueuedPerHost: 3}
		s := newSlots(t, o)
		hosts := []string{"a", "b", "c"}
		var claims []*Claim // nil: a TryAcquire slot, released by its func
		var tries []func()
		given, giveUp := context.WithCancel(context.Background())
		giveUp()
		for _, op := range ops {
			host := hosts[int(op&0x0f)%len(hosts)]
			switch op >> 4 % 4 {
			case 0:
				if c, err := s.Join(host); err == nil {
					claims = append(claims, c)
				}
			case 1:
				if r, ok := s.TryAcquire(host); ok {
					tries = append(tries, r)
				}
			case 2: // a waiter takes a free slot, or gives up at once
				if len(claims) > 0 {
					i := int(op) % len(claims)
					if err := claims[i].Wait(given); err != nil {
						claims = append(claims[:i], claims[i+1:]...)
					}
				}
			case 3:
				if i := int(op); i%2 == 0 && len(claims) > 0 {
					i %= len(claims)
					claims[i].Release()
					claims = append(claims[:i], claims[i+1:]...)
				} else if len(tries) > 0 {
					i %= len(tries)
					tries[i]()
					tries = append(tries[:i], tries[i+1:]...)
				}
			}
			s.mu.Lock()
			if s.held > o.Max || s.waiting > o.MaxWaiting || s.queued != s.held+s.waiting || s.queued != len(claims)+len(tries) {
				t.Fatalf("held %d, waiting %d, queued %d; %d claims, %d tries", s.held, s.waiting, s.queued, len(claims), len(tries))
			}
			for h, n := range s.queuedBy {
				if held := s.heldBy[h]; held > o.PerHost || n <= 0 || n < held || n > o.MaxQueuedPerHost {
					t.Fatalf("host %s: held %d, queued %d", h, held, n)
				}
			}
			s.mu.Unlock()
		}
	})
}
