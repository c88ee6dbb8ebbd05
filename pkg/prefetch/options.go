package prefetch

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

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

// Clock is the time source of an Executor: backoff and pacing waits,
// progress rate and ETA. Per-call deadlines use real time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configures an Executor. Zero values mean the defaults.
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
	// (peer.WarmSlots).
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
	// Clock is the time source (default: the real clock).
	Clock Clock
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
}

// Validate fills in defaults and checks o.
func (o *Options) Validate() error {
	switch {
	case o.Ring != nil && (len(o.Seeds) > 0 || len(o.Token) > 0):
		return errors.New("prefetch: give Ring, or Seeds and Token, not both")
	case o.Ring == nil && len(o.Seeds) == 0:
		return errors.New("prefetch: Ring or Seeds is required")
	case o.Ring == nil:
		if err := peer.ValidateToken(o.Token); err != nil {
			return fmt.Errorf("prefetch: %w", err)
		}
	}
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
	} else if o.Retries < 0 {
		o.Retries = -1
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
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Replicas < 1:
		return fmt.Errorf("prefetch: replicas must be at least 1, not %d", o.Replicas)
	case o.BatchSize < 1 || o.BatchSize > MaxBatchSize:
		return fmt.Errorf("prefetch: batch size must be in [1, %d], not %d", MaxBatchSize, o.BatchSize)
	case o.Concurrency < 1:
		return fmt.Errorf("prefetch: concurrency must be at least 1, not %d", o.Concurrency)
	case o.Bandwidth < 0:
		return fmt.Errorf("prefetch: bandwidth must not be negative, not %d", o.Bandwidth)
	case o.BackoffInitial < 0 || o.BackoffMax < o.BackoffInitial:
		return fmt.Errorf("prefetch: want 0 < backoff initial (%v) <= backoff max (%v)", o.BackoffInitial, o.BackoffMax)
	case o.CallTimeout < 0:
		return fmt.Errorf("prefetch: call timeout must not be negative, not %v", o.CallTimeout)
	case o.ProgressInterval < 0:
		return fmt.Errorf("prefetch: progress interval must not be negative, not %v", o.ProgressInterval)
	}
	return nil
}
