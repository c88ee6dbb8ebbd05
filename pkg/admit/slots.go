package admit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// Errors Join, Acquire and Wait return; callers map them to their own
// protocol's answer.
var (
	// ErrFull: no slot is free and the line of waiters is full (or
	// MaxQueued / MaxQueuedPerHost callers are already in), so the caller
	// is refused at once.
	ErrFull = errors.New("admit: too many callers")
	// ErrTimeout: no slot came free within SlotsOptions.Wait.
	ErrTimeout = errors.New("admit: no free slot in time")
	// ErrReleased: Wait on a Claim already released.
	ErrReleased = errors.New("admit: claim already released")
)

// SlotsOptions configures Slots. Zero values mean the defaults.
type SlotsOptions struct {
	// Max bounds the slots held at once, in all. Required (> 0).
	Max int
	// PerHost bounds the slots one remote host holds at once (default
	// Max: only Max bounds a host).
	PerHost int
	// MaxWaiting bounds the callers waiting for a slot at once, in all
	// (default Max). Negative: none waits; a caller that finds no free
	// slot is refused at once.
	MaxWaiting int
	// MaxQueued bounds the callers holding or waiting for a slot, in all
	// (default Max plus MaxWaiting: no bound beyond those two), and
	// MaxQueuedPerHost those of one host (default PerHost plus
	// MaxWaiting). A caller over either is refused at once, even if a
	// slot is free.
	MaxQueued, MaxQueuedPerHost int
	// Wait bounds how long a caller waits for a slot; then it is refused
	// with ErrTimeout (default: no bound, it waits until its context
	// ends).
	Wait time.Duration
	// Clock times Wait (default clock.Real()).
	Clock clock.Clock
}

// EnsureDefaults sets every zero optional field to its default.
func (o *SlotsOptions) EnsureDefaults() {
	if o.PerHost == 0 {
		o.PerHost = o.Max
	}
	if o.MaxWaiting == 0 {
		o.MaxWaiting = o.Max
	}
	waiting := max(o.MaxWaiting, 0)
	if o.MaxQueued == 0 {
		o.MaxQueued = o.Max + waiting
	}
	if o.MaxQueuedPerHost == 0 {
		o.MaxQueuedPerHost = o.PerHost + waiting
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o (after EnsureDefaults).
func (o *SlotsOptions) Validate() error {
	var errs []error
	if o.Max <= 0 {
		errs = append(errs, fmt.Errorf("max %d must be positive", o.Max))
	}
	if o.PerHost < 0 {
		errs = append(errs, fmt.Errorf("per-host %d must not be negative", o.PerHost))
	}
	if o.MaxQueued < 0 || o.MaxQueuedPerHost < 0 {
		errs = append(errs, fmt.Errorf("max queued %d and per host %d must not be negative", o.MaxQueued, o.MaxQueuedPerHost))
	}
	if o.Wait < 0 {
		errs = append(errs, fmt.Errorf("wait %v must not be negative", o.Wait))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("admit: invalid options: %w", err)
	}
	return nil
}

// Slots is a semaphore for callers a node does not trust to be few: at
// most Max hold a slot at once, PerHost of them from one remote host. A
// caller that finds none free waits in line (at most MaxWaiting wait, at
// most MaxQueued are in, holding or waiting, MaxQueuedPerHost from one
// host); beyond that it is refused at once, so the callers a node keeps
// waiting, and what they hold, are bounded too. Waiters are woken together
// when a slot is released; whichever finds room first takes it.
// Methods are safe for concurrent use.
type Slots struct {
	o SlotsOptions

	mu       sync.Mutex
	held     int
	waiting  int
	queued   int            // held + waiting
	heldBy   map[string]int // by host
	queuedBy map[string]int // by host
	freed    chan struct{}  // closed and replaced when a slot is released
	changed  Signal         // signals a slot taken or released (Changed)
}

// NewSlots returns the Slots o describes.
func NewSlots(o SlotsOptions) (*Slots, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Slots{o: o, heldBy: map[string]int{}, queuedBy: map[string]int{}, freed: make(chan struct{})}, nil
}

// Claim is a caller Join admitted: holding a slot, or in line for one,
// until Release.
type Claim struct {
	s    *Slots
	host string
	held bool // s.mu
	left bool // s.mu
}

// Join admits a caller from host: its Claim holds a slot if one is free
// for host, or else waits in line (call Wait). It returns ErrFull when the
// caller is over MaxQueued or MaxQueuedPerHost, or must wait and the line
// is full. Join never blocks, so one goroutine can admit callers one by
// one and hand the waiting ones to others.
func (s *Slots) Join(host string) (*Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued >= s.o.MaxQueued || s.queuedBy[host] >= s.o.MaxQueuedPerHost {
		return nil, ErrFull
	}
	c := &Claim{s: s, host: host}
	switch {
	case s.free(host):
		s.hold(host)
		c.held = true
	case s.waiting >= s.o.MaxWaiting: // MaxWaiting < 0: never wait
		return nil, ErrFull
	default:
		s.waiting++
	}
	s.queued++
	s.queuedBy[host]++
	return c, nil
}

// TryAcquire takes a slot for host if one is free (and host is within
// MaxQueued and MaxQueuedPerHost), never waiting; release gives it back
// (once, however often it is called).
func (s *Slots) TryAcquire(host string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued >= s.o.MaxQueued || s.queuedBy[host] >= s.o.MaxQueuedPerHost || !s.free(host) {
		return nil, false
	}
	s.hold(host)
	s.queued++
	s.queuedBy[host]++
	c := &Claim{s: s, host: host, held: true}
	return c.Release, true
}

// Acquire waits for a slot for host (Join, then Wait) and returns the
// function that gives it back (once, however often it is called). Its
// errors are ErrFull, ErrTimeout and ctx's error.
func (s *Slots) Acquire(ctx context.Context, host string) (release func(), err error) {
	c, err := s.Join(host)
	if err != nil {
		return nil, err
	}
	if err := c.Wait(ctx); err != nil {
		return nil, err
	}
	return c.Release, nil
}

// Held returns how many slots are held.
func (s *Slots) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Waiting returns how many callers wait for a slot.
func (s *Slots) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// Changed returns a channel closed the next time a slot is taken or
// released. To wait for a condition without missing a change, get the
// channel first, then check it.
func (s *Slots) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed.Chan()
}

// notify closes the channel of Changed. s.mu is held.
func (s *Slots) notify() {
	s.changed.Notify()
}

// free reports whether host may take a slot now. s.mu is held.
func (s *Slots) free(host string) bool {
	return s.held < s.o.Max && s.heldBy[host] < s.o.PerHost
}

// hold takes a slot for host. s.mu is held.
func (s *Slots) hold(host string) {
	s.held++
	s.heldBy[host]++
	s.notify()
}

// Held reports whether c holds its slot.
func (c *Claim) Held() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.held
}

// Wait waits until c holds a slot (nil), Wait has passed (ErrTimeout) or
// ctx ends (its error). On an error c has left the line: it needs no
// Release.
func (c *Claim) Wait(ctx context.Context) error {
	s := c.s
	s.mu.Lock()
	if c.left {
		s.mu.Unlock()
		return ErrReleased
	}
	if c.held {
		s.mu.Unlock()
		return nil
	}
	var timeout <-chan time.Time
	if s.o.Wait > 0 {
		t := s.o.Clock.NewTimer(s.o.Wait)
		defer t.Stop()
		timeout = t.C()
	}
	for {
		if s.free(c.host) {
			s.waiting--
			s.hold(c.host)
			c.held = true
			s.mu.Unlock()
			return nil
		}
		freed := s.freed
		s.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-timeout:
			err = ErrTimeout
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			c.Release()
			return err
		}
		s.mu.Lock()
	}
}

// Release gives back c's slot, or takes c out of the line. Only the first
// call does anything.
func (c *Claim) Release() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.left {
		return
	}
	c.left = true
	if s.queuedBy[c.host]--; s.queuedBy[c.host] <= 0 {
		delete(s.queuedBy, c.host)
	}
	s.queued--
	if !c.held {
		s.waiting--
		return
	}
	s.held--
	if s.heldBy[c.host]--; s.heldBy[c.host] <= 0 {
		delete(s.heldBy, c.host)
	}
	close(s.freed)
	s.freed = make(chan struct{})
	s.notify()
}
