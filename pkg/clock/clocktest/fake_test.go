package clocktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fired(c <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-c:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestTimerFiresAtItsDeadline(t *testing.T) {
	f := clocktest.New(t0)
	tm := f.NewTimer(10 * time.Second)
	f.Advance(9 * time.Second)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("fired 1s early")
	}
	f.Advance(time.Second)
	if at, ok := fired(tm.C()); !ok || !at.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("at the deadline: fired %v at %v", ok, at)
	}
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters after firing", f.Waiters())
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reported active")
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a fired timer reported active")
	}
	if !tm.Stop() {
		t.Fatal("Stop of a reset timer reported inactive")
	}
	f.Advance(time.Hour)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("a stopped timer fired")
	}
}

func TestResetDropsUnreceivedValue(t *testing.T) {
	f := clocktest.New(t0)
	tm := f.NewTimer(time.Second)
	f.Advance(time.Second)
	tm.Reset(time.Second)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("a stale value survived Reset")
	}
}

func TestTickerAndOrder(t *testing.T) {
	f := clocktest.New(t0)
	tk := f.NewTicker(time.Second)
	var order []string
	done := make(chan string, 2)
	f.AfterFunc(1500*time.Millisecond, func() { done <- "func" })
	f.Advance(time.Second)
	if at, ok := fired(tk.C()); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("tick 1: %v %v", ok, at)
	}
	f.Advance(2 * time.Second) // ticks at 2s and 3s: one is dropped (buffer 1)
	if at, ok := fired(tk.C()); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("tick 2: %v %v", ok, at)
	}
	order = append(order, <-done)
	if len(order) != 1 || !f.Now().Equal(t0.Add(3*time.Second)) {
		t.Fatalf("order %v, now %v", order, f.Now())
	}
	tk.Reset(10 * time.Second)
	f.Advance(9 * time.Second)
	if _, ok := fired(tk.C()); ok {
		t.Fatal("ticked before the new period")
	}
	tk.Stop()
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters after Stop", f.Waiters())
	}
}

func TestBlockUntil(t *testing.T) {
	f := clocktest.New(t0)
	go func() { f.NewTimer(time.Minute) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	short, c2 := context.WithCancel(context.Background())
	c2()
	if err := f.BlockUntil(short, 2); err == nil {
		t.Fatal("BlockUntil(2) returned nil with 1 waiter and a canceled context")
	}
}

func TestLongJumpWithATicker(t *testing.T) {
	f := clocktest.New(t0)
	tk := f.NewTicker(200 * time.Millisecond)
	tm := f.NewTimer(12 * time.Hour)
	f.Advance(24 * time.Hour)
	if at, ok := fired(tm.C()); !ok || !at.Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("the timer: %v %v", ok, at)
	}
	if _, ok := fired(tk.C()); !ok {
		t.Fatal("no tick after a day")
	}
	// The next tick is one period after the jump's end, on the ticker's grid.
	f.Advance(199 * time.Millisecond)
	if _, ok := fired(tk.C()); ok {
		t.Fatal("ticked off the grid")
	}
	f.Advance(time.Millisecond)
	if at, ok := fired(tk.C()); !ok || !at.Equal(t0.Add(24*time.Hour+200*time.Millisecond)) {
		t.Fatalf("the tick after the jump: %v %v", ok, at)
	}
}
