package cache

import (
	"context"
	"slices"
	"sync"

	"github.com/ringcache/ringcache/pkg/admit"
)

// slotClass is the priority class of an origin fetch.
type slotClass uint8

const (
	classRead slotClass = iota // a Read is waiting on the fetch
	classWarm                  // only a Warm call is
)

// WarmSlots is how many of a node's originConcurrency origin slots fetches
// for Warm calls may hold at once: all but a quarter of them (at least one
// is kept for reads when there are two or more).
func WarmSlots(originConcurrency int) int {
	reserve := originConcurrency / 4
	if reserve == 0 && originConcurrency >= 2 {
		reserve = 1
	}
	return max(originConcurrency-reserve, 1)
}

// originSlots hands out a node's origin fetch slots so that warm-ups never
// starve reads:
//
//   - a freed slot goes to the longest-waiting read fetch, and only when no
//     read waits to the longest-waiting warm fetch (FIFO within a class, so
//     concurrent Warm calls share the warm slots in proportion to their
//     waiting fetches);
//   - warm fetches never hold more than maxWarm slots (WarmSlots), so while
//     any number of warm-ups run, a read finds a free slot unless other
//     reads hold the reserve, and never queues behind a warm fetch;
//   - a warm fetch that a read joins (single flight) is promoted: it waits
//     as a read from then on.
type originSlots struct {
	mu      sync.Mutex
	free    int // slots not held
	warm    int // slots held by warm fetches
	maxWarm int
	reads   []*slotWaiter  // FIFO
	warms   []*slotWaiter  // FIFO
	readers map[string]int // fetch key -> reads waiting on that fetch
	waiting map[string]*slotWaiter
	changed admit.Signal // signals a change of the queues or slots (changes)
}

type slotWaiter struct {
	key     string
	class   slotClass
	granted bool
	ready   chan struct{} // closed when granted
}

func newOriginSlots(n int) *originSlots {
	return &originSlots{free: n, maxWarm: WarmSlots(n), readers: map[string]int{}, waiting: map[string]*slotWaiter{}}
}

// acquire waits for a slot for the fetch of key in class and returns the
// function that gives it back.
func (o *originSlots) acquire(ctx context.Context, key string, class slotClass) (func(), error) {
	w := &slotWaiter{key: key, class: class, ready: make(chan struct{})}
	o.mu.Lock()
	if class == classWarm && o.readers[key] > 0 {
		w.class = classRead
	}
	if w.class == classRead {
		o.reads = append(o.reads, w)
	} else {
		o.warms = append(o.warms, w)
		o.waiting[key] = w
	}
	o.dispatch()
	o.notify()
	o.mu.Unlock()
	select {
	case <-w.ready:
	case <-ctx.Done():
		o.mu.Lock()
		if !w.granted {
			o.remove(w)
			o.notify()
			o.mu.Unlock()
			return nil, ctx.Err()
		}
		o.mu.Unlock() // granted meanwhile: use it
	}
	granted := w.class // fixed once granted
	return func() {
		o.mu.Lock()
		o.free++
		if granted == classWarm {
			o.warm--
		}
		o.dispatch()
		o.notify()
		o.mu.Unlock()
	}, nil
}

// dispatch grants free slots to waiters, reads first. o.mu is held.
func (o *originSlots) dispatch() {
	for o.free > 0 {
		var w *slotWaiter
		switch {
		case len(o.reads) > 0:
			w, o.reads = o.reads[0], o.reads[1:]
		case len(o.warms) > 0 && o.warm < o.maxWarm:
			w, o.warms = o.warms[0], o.warms[1:]
			delete(o.waiting, w.key)
			o.warm++
		default:
			return
		}
		o.free--
		w.granted = true
		close(w.ready)
	}
}

// remove drops a waiter that gave up. o.mu is held.
func (o *originSlots) remove(w *slotWaiter) {
	if w.class == classRead {
		o.reads = slices.DeleteFunc(o.reads, func(x *slotWaiter) bool { return x == w })
		return
	}
	o.warms = slices.DeleteFunc(o.warms, func(x *slotWaiter) bool { return x == w })
	if o.waiting[w.key] == w {
		delete(o.waiting, w.key)
	}
}

// readWaiting records a read about to wait on the fetch of key, promoting
// a warm fetch of key that waits for a slot.
func (o *originSlots) readWaiting(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.readers[key]++
	if w := o.waiting[key]; w != nil {
		o.remove(w)
		w.class = classRead
		o.reads = append(o.reads, w)
		o.dispatch()
		o.notify()
	}
}

// readDone undoes readWaiting.
func (o *originSlots) readDone(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.readers[key]--; o.readers[key] <= 0 {
		delete(o.readers, key)
	}
}

// changes returns a channel closed the next time a fetch queues, is
// granted a slot, gives up or releases its slot, or is promoted. To wait
// for a state without missing a change, get the channel first, then check.
func (o *originSlots) changes() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed.Chan()
}

// notify closes the channel of changes. o.mu is held.
func (o *originSlots) notify() {
	o.changed.Notify()
}
