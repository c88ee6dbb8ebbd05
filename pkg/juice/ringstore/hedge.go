package ringstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// holdTimeout bounds the Has call that decides whether a hedge is sent. It
// is a context deadline on the RPC, in real time.
const holdTimeout = time.Second

// holds reports whether the owner of a holds block, so that a hedge to it
// cannot cost an origin fetch. An owner that does not answer is a failed
// attempt like any other (err), without a Read that might reach it and
// start a fetch there.
func (s *Store) holds(ctx context.Context, a attempt, block string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	sizes, err := a.client.Has(ctx, s.o.Volume, []string{block})
	if err != nil {
		return false, err
	}
	if len(sizes) != 1 {
		return false, fmt.Errorf("has: %d sizes for 1 key", len(sizes))
	}
	return sizes[0] >= 0, nil
}

// hedgeDelay is HedgeFactor × p95 of recent owner latencies, clamped.
func (s *Store) hedgeDelay() time.Duration {
	p95, ok := s.lat.quantile(0.95)
	if !ok {
		return s.o.HedgeMax
	}
	d := time.Duration(float64(p95) * s.o.HedgeFactor)
	return min(max(d, s.o.HedgeMin), s.o.HedgeMax)
}

// takeHedge counts a hedge if it keeps hedges within HedgeBudget of all
// reads (plus one, so the first slow read can be hedged).
func (s *Store) takeHedge() bool {
	if s.o.HedgeBudget < 0 {
		return false
	}
	for {
		h := s.c.hedges.Load()
		if float64(h+1) > s.o.HedgeBudget*float64(s.reads.Load())+1 {
			return false
		}
		if s.c.hedges.CompareAndSwap(h, h+1) {
			return true
		}
	}
}

// latencies keeps a ring buffer of the last successful owner latencies:
// a window of samples, not of time.
type latencies struct {
	mu  sync.Mutex
	buf []time.Duration
	n   int
}

func newLatencies(size int) *latencies { return &latencies{buf: make([]time.Duration, size)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.n%len(l.buf)] = d
	l.n++
	l.mu.Unlock()
}

// quantile returns the q-quantile of the recorded latencies, or false
// with fewer than 16 samples.
func (l *latencies) quantile(q float64) (time.Duration, bool) {
	l.mu.Lock()
	n := min(l.n, len(l.buf))
	if n < 16 {
		l.mu.Unlock()
		return 0, false
	}
	s := make([]time.Duration, n)
	copy(s, l.buf[:n])
	l.mu.Unlock()
	slices.Sort(s)
	return s[int(q*float64(n-1))], true
}
