package prefetch

import (
	"context"
	"errors"
	"fmt"

	"github.com/ringcache/ringcache/pkg/ring"
)

// Executor runs warm-ups, checks and dry runs against a ring. It is safe
// for concurrent use; each Run is independent (its own budget).
type Executor struct {
	o    Options
	ring Ring
	own  *ClusterRing // made from Seeds and Token: closed by Close
}

// New returns an executor for o.
func New(o Options) (*Executor, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	e := &Executor{o: o, ring: o.Ring}
	if e.ring == nil {
		cr, err := NewClusterRing(o.Token, o.Seeds...)
		if err != nil {
			return nil, fmt.Errorf("prefetch: %w", err)
		}
		cr.StatusTimeout = min(cr.StatusTimeout, o.CallTimeout)
		e.ring, e.own = cr, cr
	}
	return e, nil
}

// Close releases the clients of a ring the executor made from Seeds.
func (e *Executor) Close() error {
	if e.own != nil {
		return e.own.Close()
	}
	return nil
}

// placement asks the ring for its placement.
func (e *Executor) placement(ctx context.Context) (*ring.Placement, error) {
	cctx, cancel := context.WithTimeout(ctx, e.o.CallTimeout)
	defer cancel()
	p, err := e.ring.Placement(cctx)
	if err != nil {
		return nil, err
	}
	if p.Len() == 0 {
		return nil, errors.New("the ring has no members")
	}
	return p, nil
}

// ownerAddrs returns the peer addresses of the first n owners of ringKey.
func ownerAddrs(p *ring.Placement, ringKey string, n int) []string {
	ms := p.Owners(ringKey, n)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	return out
}

// Run warms the plan's blocks: each block ends up held by its first
// Replicas owners, or is reported in Result.Failed. It returns an error
// only when it cannot start (no placement) or ctx ends; then the Result
// still tells what was done.
func (e *Executor) Run(ctx context.Context, plan *Plan) (*Result, error) {
	if plan == nil {
		return nil, errors.New("prefetch: nil plan")
	}
	view, err := e.placement(ctx)
	if err != nil {
		return nil, fmt.Errorf("prefetch: learn the ring: %w", err)
	}
	return e.newRun(plan, view).run(ctx)
}
