package prefetch

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer"
)

// Defaults of Options.
const (
	DefaultReplicas         = 1
	DefaultBatchSize        = 64
	DefaultConcurrency      = 2
	DefaultRetries          = 8
	DefaultBackoffInitial   = 250 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultCallTimeout      = 2 * time.Minute
	DefaultProgressInterval = time.Second
	DefaultViewRefresh      = 30 * time.Second

	// MaxBatchSize is the most keys a node accepts in one call.
	MaxBatchSize = 4096
)

// Options configures an Executor. Zero values mean the defaults; New calls
// EnsureDefaults and then Validate.
type Options struct {
	// Ring gives the placement and clients of its members. Give either
	// Ring, or Seeds and Token (the executor then uses a ClusterRing and
	// closes it on Close).
	Ring Ring
	// Seeds are peer addresses (host:port) of cache nodes to learn the
	// ring from, when Ring is nil.
	Seeds []string
	// Token is the cluster token, when Ring is nil.
	Token []byte

	// Replicas is how many owners of each block must hold it: the first
	// Replicas owners in ring order (default 1, the primary). Capped at
	// the ring's size. Each replica owner fetches the block from the
	// origin itself.
	Replicas int
	// BatchSize is the most keys in one Warm call (default 64, at most
	// MaxBatchSize).
	BatchSize int
	// Concurrency is the most Warm calls in flight to one owner (default
	// 2). A node fetches a call's keys in parallel, up to its warm slots
	// (cache.WarmSlots).
	Concurrency int
	// Bandwidth is this warm-up's budget of origin bytes per second,
	// shared by all owners (0: none). Batches are paced by the bytes they
	// will fetch (block sizes of the keys an owner does not hold), cut to
	// at most one second of budget each (at least one block), and the
	// budget allows a burst of one second (or one block if larger).
	Bandwidth int64
	// Retries is how often a failed block is tried again, with exponential
	// backoff from BackoffInitial doubling up to BackoffMax (default 8;
	// negative: never).
	Retries int
	// BackoffInitial is the wait before the first retry (default 250ms).
	BackoffInitial time.Duration
	// BackoffMax caps the wait between retries (default 10s).
	BackoffMax time.Duration
	// CallTimeout is the deadline of each call to a node (default 2m). A
	// Warm call that runs out of time is retried like a failed owner; the
	// node keeps fetching what it started, so the retry finds it cached
	// or joins the fetch in flight.
	CallTimeout time.Duration
	// ViewRefresh is how often a run asks the Ring for the placement even
	// when nothing failed, to follow members joining (default 30s;
	// negative: only after failures and at the end).
	ViewRefresh time.Duration
	// OnProgress receives progress at most every ProgressInterval, and
	// once at the start and the end of a run. It is called from the run's
	// goroutine and must not block for long.
	OnProgress func(Progress)
	// ProgressInterval is the least time between OnProgress calls
	// (default 1s).
	ProgressInterval time.Duration
	// Clock is the time of backoff and pacing waits, placement refreshes,
	// progress intervals, rate and ETA (default clock.Real()). Per-call
	// deadlines (CallTimeout) bound network calls and use real time.
	Clock clock.Clock
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
}

// EnsureDefaults sets every zero-valued optional field to its default.
func (o *Options) EnsureDefaults() {
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.BackoffInitial == 0 {
		o.BackoffInitial = DefaultBackoffInitial
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffInitial)
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.ViewRefresh == 0 {
		o.ViewRefresh = DefaultViewRefresh
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	o.Clock = clock.Or(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks o (after EnsureDefaults) and reports every problem.
func (o *Options) Validate() error {
	var errs []error
	switch {
	case o.Ring != nil && (len(o.Seeds) > 0 || len(o.Token) > 0):
		errs = append(errs, errors.New("give Ring, or Seeds and Token, not both"))
	case o.Ring == nil && len(o.Seeds) == 0:
		errs = append(errs, errors.New("Ring or Seeds is required"))
	case o.Ring == nil:
		if err := peer.ValidateToken(o.Token); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas must be at least 1, not %d", o.Replicas))
	}
	if o.BatchSize < 1 || o.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("batch size must be in [1, %d], not %d", MaxBatchSize, o.BatchSize))
	}
	if o.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency must be at least 1, not %d", o.Concurrency))
	}
	if o.Bandwidth < 0 {
		errs = append(errs, fmt.Errorf("bandwidth must not be negative, not %d", o.Bandwidth))
	}
	if o.BackoffInitial < 0 || o.BackoffMax < o.BackoffInitial {
		errs = append(errs, fmt.Errorf("want 0 < backoff initial (%v) <= backoff max (%v)", o.BackoffInitial, o.BackoffMax))
	}
	if o.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout must not be negative, not %v", o.CallTimeout))
	}
	if o.ProgressInterval < 0 {
		errs = append(errs, fmt.Errorf("progress interval must not be negative, not %v", o.ProgressInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prefetch: invalid options: %w", err)
	}
	return nil
}
