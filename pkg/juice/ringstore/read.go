package ringstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/juicedata/juicefs/pkg/object"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/peer"
)

// Get implements object.ObjectStorage. Data blocks of the volume are read
// through the ring; anything else comes from the origin.
func (s *Store) Get(key string, off, limit int64, getters ...object.AttrGetter) (io.ReadCloser, error) {
	block, ok := strings.CutPrefix(key, s.o.Prefix)
	if ok {
		_, err := blockkey.Parse(block)
		ok = err == nil
	}
	if !ok {
		s.c.passThrough.Add(1)
		return s.o.Origin.Get(key, off, limit, getters...)
	}
	off, limit, err := normRange(off, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	deadline, st, probe := s.budgets.begin(block)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	data, err := s.read(ctx, key, block, off, limit)
	if s.budgets.end(block, st, err) {
		s.c.readTimeouts.Add(1)
		s.log.Error("block read gave up", "key", key, "waited", s.o.Clock.Now().Sub(st.start).Round(time.Millisecond).String(),
			"err", err, "then", fmt.Sprintf("reads of the block get %v probes for %v", s.o.ProbeTimeout, s.o.RetryWindow))
	} else if err != nil && probe {
		s.log.Debug("block probe failed", "key", key, "err", err)
	}
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

type source int

const (
	srcLocal source = iota
	srcPeer
	srcOrigin
)

type attempt struct {
	src    source
	client *peer.Client // nil for the origin
}

func (a attempt) String() string {
	if a.client == nil {
		return "origin"
	}
	return "owner " + a.client.Addr()
}

type result struct {
	data    []byte
	a       attempt
	idx     int  // index in the candidates
	notHeld bool // a hedge not sent: the owner does not hold the block
	// spent: the attempt ran out of the block's budget (not of its own
	// AttemptTimeout), so no other candidate has time left either.
	spent bool
	err   error
	took  time.Duration
}

// errNotHeld is a hedge's result when its owner does not hold the block.
var errNotHeld = errors.New("hedge not sent: the owner does not hold the block")

// read tries the block's owners in rank order, then the origin, until ctx
// (the block's budget) ends. The next candidate starts when the current
// one fails, or, as a hedge, when it is slower than the hedging delay, the
// hedge budget allows, and the next candidate is an owner that holds the
// block (a hedge to an owner without it, or to the origin, would fetch
// the block from the origin a second time); the first answer wins and the
// others are cancelled.
func (s *Store) read(ctx context.Context, key, block string, off, limit int64) ([]byte, error) {
	s.reads.Add(1)
	start := s.o.Clock.Now()
	cands := s.candidates(block)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(cands))
	running := map[int]bool{}
	next := 0
	launch := func(hedge bool) {
		i, a := next, cands[next]
		next++
		running[i] = true
		go func() {
			var r result
			held, err := true, error(nil)
			if hedge {
				held, err = s.holds(ctx, a, block)
			}
			switch {
			case err != nil:
				dl, _ := ctx.Deadline()
				r = result{a: a, err: fmt.Errorf("has: %w", err), spent: isDeadline(err) && !dl.IsZero() && !dl.After(s.o.Clock.Now().Add(holdTimeout))}
			case !held:
				r = result{a: a, notHeld: true, err: errNotHeld}
			default:
				r = s.try(ctx, a, key, block, off, limit)
			}
			r.idx = i
			results <- r
		}()
	}
	launch(false)
	hedge := s.o.Clock.NewTimer(s.hedgeDelay())
	defer hedge.Stop()
	hedgeChecked := -1 // candidates up to this one were considered for a hedge
	var errs []error
	spent := false
	for len(running) > 0 {
		select {
		case r := <-results:
			delete(running, r.idx)
			if r.notHeld {
				s.c.hedges.Add(-1) // a hedge not sent spends no budget
				s.c.hedgesSkipped.Add(1)
				if r.idx == next-1 {
					next-- // still the next candidate should the others fail
				}
				continue
			}
			if r.err == nil {
				s.account(r)
				return r.data, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", r.a, r.err))
			spent = spent || r.spent
			if errors.Is(r.err, peer.ErrChecksum) {
				s.c.checksumErrors.Add(1)
			}
			if r.a.client != nil {
				s.c.fallbacks.Add(1)
				s.log.Debug("owner failed, trying the next", "owner", r.a.client.Addr(), "key", block, "err", r.err)
			}
			// A failed attempt passes the read on at once, even while a
			// slower one is still running, unless the budget is spent:
			// a candidate started then could only add an origin fetch.
			if next < len(cands) && ctx.Err() == nil && !r.spent {
				launch(false)
			}
		case <-hedge.C():
			if next < len(cands) && next > hedgeChecked && cands[next].client != nil && ctx.Err() == nil && s.takeHedge() {
				hedgeChecked = next
				launch(true)
				hedge.Reset(s.hedgeDelay())
			}
		case <-ctx.Done():
			for i := range running {
				errs = append(errs, fmt.Errorf("%s: no answer", cands[i]))
			}
			return nil, fmt.Errorf("read %s: %w after %v: %w", key, ErrReadTimeout,
				s.o.Clock.Now().Sub(start).Round(time.Millisecond), errors.Join(errs...))
		}
	}
	if spent || (ctx.Err() != nil && next < len(cands)) {
		return nil, fmt.Errorf("read %s: %w after %v: %w", key, ErrReadTimeout,
			s.o.Clock.Now().Sub(start).Round(time.Millisecond), errors.Join(errs...))
	}
	return nil, fmt.Errorf("read %s: every owner and the origin failed: %w", key, errors.Join(errs...))
}

// candidates are the block's owners in rank order, then the origin.
func (s *Store) candidates(block string) []attempt {
	var out []attempt
	if v := s.view.Load(); v != nil {
		for _, m := range v.placement.Owners(blockkey.Ring(s.o.Volume, block), s.o.Owners) {
			c := v.clients[m.Addr]
			if c == nil {
				continue
			}
			src := srcPeer
			if m.Addr == s.o.LocalNode || m.Addr == v.self {
				src = srcLocal
			}
			out = append(out, attempt{src: src, client: c})
		}
	}
	return append(out, attempt{src: srcOrigin})
}

func (s *Store) try(ctx context.Context, a attempt, key, block string, off, limit int64) result {
	start := s.o.Clock.Now()
	if a.client == nil {
		data, err := s.getOrigin(ctx, key, off, limit)
		return result{data: data, a: a, err: err, took: s.o.Clock.Now().Sub(start)}
	}
	// A bound on the RPC: a context deadline, enforced in real time like
	// the block budget's (see Options.Clock).
	actx, cancel := context.WithTimeout(ctx, s.o.AttemptTimeout)
	defer cancel()
	data, _, err := a.client.Read(actx, s.o.Volume, block, off, limit)
	if err == nil {
		err = checkLength(len(data), limit)
	}
	took := s.o.Clock.Now().Sub(start)
	if err == nil {
		s.lat.add(took)
	}
	// The client may report the deadline a moment before ctx itself is
	// done: an attempt bounded by the budget rather than by
	// AttemptTimeout that timed out spent the budget.
	budgetDL, _ := ctx.Deadline()
	spent := err != nil && isDeadline(err) && !budgetDL.IsZero() && !budgetDL.After(start.Add(s.o.AttemptTimeout))
	return result{data: data, a: a, err: err, took: took, spent: spent}
}

// getOrigin reads the range from the origin. The JuiceFS object clients
// take no context; a cancelled hedge closes the body instead.
func (s *Store) getOrigin(ctx context.Context, key string, off, limit int64) ([]byte, error) {
	rc, err := s.o.Origin.Get(key, off, limit)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	defer rc.Close()
	max := int64(MaxObjectSize)
	if limit > 0 {
		max = limit
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err == nil {
		err = checkLength(len(data), limit)
	}
	return data, err
}

// isDeadline reports whether err is a deadline, as a context error or as
// the gRPC status the peer client returns.
func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

func (s *Store) account(r result) {
	n := int64(len(r.data))
	switch r.a.src {
	case srcLocal:
		s.c.localReads.Add(1)
		s.c.localBytes.Add(n)
	case srcPeer:
		s.c.peerReads.Add(1)
		s.c.peerBytes.Add(n)
	case srcOrigin:
		s.c.originReads.Add(1)
		s.c.originBytes.Add(n)
	}
}
