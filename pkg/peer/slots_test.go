package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
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

func notGranted(t *testing.T, c <-chan func(), what string) {
	t.Helper()
	select {
	case <-c:
		t.Fatalf("%s: granted, want it to wait", what)
	case <-time.After(50 * time.Millisecond):
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
	notGranted(t, w4, "warm beyond the cap with a slot free")
	r1 := granted(t, acquireAsync(ctx, o, "r1", classRead), "read with warms at their cap")
	r2 := acquireAsync(ctx, o, "r2", classRead)
	notGranted(t, r2, "read with every slot held")
	for {
		if r, w := o.waiters(); r == 1 && w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	rels[0]() // a warm slot frees: the waiting read gets it, not the waiting warm
	r2rel := granted(t, r2, "waiting read after a warm released")
	notGranted(t, w4, "waiting warm while a read took the freed slot")
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
	notGranted(t, k, "warm beyond the cap")
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
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := o.acquire(short, "b", classWarm); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with every slot held: %v, want DeadlineExceeded", err)
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
type gatedOrigin struct {
	objs  map[string][]byte
	gated map[string]bool
	gate  chan struct{}

	mu                 sync.Mutex
	inflight, maxGated int
	gatedNow           int
	gets               map[string]int
}

func (o *gatedOrigin) Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.gets[key]++
	if o.gated[key] {
		o.gatedNow++
		o.maxGated = max(o.maxGated, o.gatedNow)
	}
	o.mu.Unlock()
	if o.gated[key] {
		select {
		case <-o.gate:
		case <-ctx.Done():
		}
		o.mu.Lock()
		o.gatedNow--
		o.mu.Unlock()
	}
	b, ok := o.objs[key]
	if !ok {
		return nil, errors.New("no such key")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (o *gatedOrigin) state() (gatedNow, maxGated int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gatedNow, o.maxGated
}

// TestWarmDoesNotStarveReads: with warm-ups filling every warm slot of a
// node on a stalled origin, reads of other blocks are still served, and a
// read of a block a warm-up has queued is served ahead of the warm-up.
func TestWarmDoesNotStarveReads(t *testing.T) {
	origin := &gatedOrigin{objs: map[string][]byte{}, gated: map[string]bool{}, gate: make(chan struct{}), gets: map[string]int{}}
	var warm1, warm2 []string
	for i := range 12 {
		k := key(500+i, 4096)
		origin.objs[k], origin.gated[k] = randBytes(4096), true
		warm1 = append(warm1, k)
	}
	for i := range 6 {
		k := key(600+i, 4096)
		origin.objs[k] = randBytes(4096) // not gated: a stall only of warm1's keys
		warm2 = append(warm2, k)
	}
	readKey := key(700, 4096)
	origin.objs[readKey] = randBytes(4096)
	f := newFixture(t, nil, func(o *ServerOptions) {
		o.OriginConcurrency = 4
		o.Volumes[0].Origin = origin
	})

	type warmDone struct {
		res []*peerpb.WarmResult
		err error
	}
	warm := func(keys []string) chan warmDone {
		c := make(chan warmDone, 1)
		go func() {
			res, err := f.client.Warm(ctx10s(t), "models", keys)
			c <- warmDone{res, err}
		}()
		return c
	}
	w1 := warm(warm1)
	// The first warm-up takes every warm slot (3 of 4) and stalls there.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if n, _ := origin.state(); n == WarmSlots(4) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the warm-up never filled the warm slots")
		}
	}
	w2 := warm(warm2)
	// The second warm-up's fetches queue for a warm slot.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, w := f.srv.slots.waiters(); w == WarmSlots(4) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second warm-up's fetches never queued")
		}
	}
	if _, maxGated := origin.state(); maxGated != WarmSlots(4) {
		t.Errorf("warm fetches in flight peaked at %d, want the cap %d", maxGated, WarmSlots(4))
	}

	// A read of another block gets the reserved slot at once.
	got, info, err := f.client.Read(ctx10s(t), "models", readKey, 0, -1)
	if err != nil || !bytes.Equal(got, origin.objs[readKey]) || info.Source != peerpb.Source_SOURCE_ORIGIN {
		t.Fatalf("read during a stalled warm-up: source %v, err %v", info.Source, err)
	}
	// A read of a block the second warm-up has queued lifts that fetch
	// ahead of the queued warm fetches.
	got, _, err = f.client.Read(ctx10s(t), "models", warm2[0], 0, -1)
	if err != nil || !bytes.Equal(got, origin.objs[warm2[0]]) {
		t.Fatalf("read of a block queued by a warm-up: %v", err)
	}
	select {
	case d := <-w2:
		t.Fatalf("second warm-up finished while every warm slot was stalled: %v", d.err)
	default:
	}

	close(origin.gate)
	for _, c := range []chan warmDone{w1, w2} {
		d := <-c
		if d.err != nil {
			t.Fatal(d.err)
		}
		for _, r := range d.res {
			if r.State == peerpb.WarmResult_STATE_FAILED {
				t.Errorf("warm of %s failed: %s", r.Key, r.Error)
			}
		}
	}
	origin.mu.Lock()
	defer origin.mu.Unlock()
	for k, n := range origin.gets {
		if n != 1 {
			t.Errorf("origin GETs of %s = %d, want 1", k, n)
		}
	}
	if f.srv.slots.free != 4 || f.srv.slots.warm != 0 {
		t.Errorf("slots after the warm-ups: free %d, warm %d", f.srv.slots.free, f.srv.slots.warm)
	}
}
