package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWarmSlots(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 3, 8: 6, 16: 12} {
		if got := WarmSlots(n); got != want {
			t.Errorf("WarmSlots(%d) = %d, want %d", n, got, want)
		}
	}
}

// acquireAsync starts acquire in a goroutine; the channel yields its
// release function once granted.
func acquireAsync(ctx context.Context, o *originSlots, key string, class slotClass) <-chan func() {
	c := make(chan func(), 1)
	go func() {
		if rel, err := o.acquire(ctx, key, class); err == nil {
			c <- rel
		}
	}()
	return c
}

func granted(t *testing.T, c <-chan func(), what string) func() {
	t.Helper()
	select {
	case rel := <-c:
		return rel
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not granted", what)
		return nil
	}
}

// notGranted waits until o queues reads and warms (the fetch of c among
// them), then asserts c was not granted.
func notGranted(t *testing.T, o *originSlots, c <-chan func(), what string, reads, warms int) {
	t.Helper()
	waitWaiters(t, o, reads, warms)
	select {
	case <-c:
		t.Fatalf("%s: granted, want it to wait", what)
	default:
	}
}

// waitWaiters waits, on o's change signal, until o queues reads and warms.
func waitWaiters(t *testing.T, o *originSlots, reads, warms int) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		changed := o.changes()
		if r, w := o.waiters(); r == reads && w == warms {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			r, w := o.waiters()
			t.Fatalf("queued %d reads, %d warms; want %d, %d", r, w, reads, warms)
		}
	}
}

// waiters returns the queued reads and warms.
func (o *originSlots) waiters() (reads, warms int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reads), len(o.warms)
}

func TestOriginSlotsReadsFirstAndWarmCap(t *testing.T) {
	ctx := ctx10s(t)
	o := newOriginSlots(4) // 3 warm slots, 1 kept for reads
	var rels []func()
	for i := range 3 {
		rels = append(rels, granted(t, acquireAsync(ctx, o, "w"+string(rune('0'+i)), classWarm), "warm within the cap"))
	}
	w4 := acquireAsync(ctx, o, "w4", classWarm)
	notGranted(t, o, w4, "warm beyond the cap with a slot free", 0, 1)
	r1 := granted(t, acquireAsync(ctx, o, "r1", classRead), "read with warms at their cap")
	r2 := acquireAsync(ctx, o, "r2", classRead)
	notGranted(t, o, r2, "read with every slot held", 1, 1)
	rels[0]() // a warm slot frees: the waiting read gets it, not the waiting warm
	r2rel := granted(t, r2, "waiting read after a warm released")
	notGranted(t, o, w4, "waiting warm while a read took the freed slot", 0, 1)
	r1() // a slot frees with no read waiting and warms under their cap: the warm gets it
	granted(t, w4, "waiting warm once a slot is free and warms are under the cap")()
	r2rel()
	rels[1]()
	rels[2]()
	if o.free != 4 || o.warm != 0 {
		t.Errorf("after releasing everything: free %d, warm %d; want 4, 0", o.free, o.warm)
	}
}

func TestOriginSlotsPromotion(t *testing.T) {
	ctx := ctx10s(t)
	o := newOriginSlots(4)
	var rels []func()
	for i := range 3 {
		rels = append(rels, granted(t, acquireAsync(ctx, o, "w"+string(rune('0'+i)), classWarm), "warm"))
	}
	k := acquireAsync(ctx, o, "k", classWarm)
	notGranted(t, o, k, "warm beyond the cap", 0, 1)
	o.readWaiting("k") // a read joined the fetch of k: it waits as a read now
	rel := granted(t, k, "promoted warm")
	if o.warm != 3 {
		t.Errorf("warm slots held = %d, want 3 (the promoted fetch holds a read slot)", o.warm)
	}
	o.readDone("k")
	rel()
	for _, r := range rels {
		r()
	}
	if o.free != 4 || o.warm != 0 || len(o.readers) != 0 || len(o.waiting) != 0 {
		t.Errorf("after releasing everything: %+v", o)
	}

	// A read that comes first makes a later warm of the same key a read.
	for i := range 3 {
		rels[i] = granted(t, acquireAsync(ctx, o, "w"+string(rune('0'+i)), classWarm), "warm")
	}
	o.readWaiting("j")
	granted(t, acquireAsync(ctx, o, "j", classWarm), "warm of a key a read waits on")()
	o.readDone("j")
	for _, r := range rels {
		r()
	}
}

func TestOriginSlotsCancel(t *testing.T) {
	o := newOriginSlots(1)
	rel, err := o.acquire(ctx10s(t), "a", classRead)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx10s(t))
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := o.acquire(short, "b", classWarm)
		errc <- err
	}()
	waitWaiters(t, o, 0, 1) // b waits for the slot a holds
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with every slot held, cancelled: %v, want Canceled", err)
	}
	if r, w := o.waiters(); r != 0 || w != 0 || len(o.waiting) != 0 {
		t.Fatalf("a cancelled waiter stayed queued: %d reads, %d warms", r, w)
	}
	rel()
	if o.free != 1 {
		t.Fatalf("free = %d, want 1", o.free)
	}
}

// gatedOrigin serves objects from memory; GETs of gated keys block until
// the gate is opened. It counts GETs in flight.

func ctx10s(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
