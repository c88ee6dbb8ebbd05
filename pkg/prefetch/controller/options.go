package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// DefaultStatusInterval is how often a run writes its progress.
const DefaultStatusInterval = 2 * time.Second

// Options configures a Reconciler. Zero values mean the defaults; New
// calls EnsureDefaults and then Validate.
type Options struct {
	// Warmer runs the warm-ups (required).
	Warmer Warmer
	// Clock is the time of schedules, start and completion times, run
	// deadlines and progress writes (default clock.Real()). The
	// executor's waits follow its own prefetch.Options.Clock.
	Clock clock.Clock
	// StatusInterval is the least time between progress writes of a run
	// (default DefaultStatusInterval, which a negative value also means).
	StatusInterval time.Duration
}

// EnsureDefaults sets every zero-valued optional field to its default.
func (o *Options) EnsureDefaults() {
	o.Clock = clock.Or(o.Clock)
	if o.StatusInterval <= 0 {
		o.StatusInterval = DefaultStatusInterval
	}
}

// Validate checks o (after EnsureDefaults) and reports every problem.
func (o *Options) Validate() error {
	var errs []error
	if o.Warmer == nil {
		errs = append(errs, errors.New("a warmer is required"))
	}
	if o.Clock == nil {
		errs = append(errs, errors.New("a clock is required"))
	}
	if o.StatusInterval <= 0 {
		errs = append(errs, fmt.Errorf("status interval must be positive, not %v", o.StatusInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controller: invalid options: %w", err)
	}
	return nil
}
