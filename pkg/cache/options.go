package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer"
)

// Store is the part of *blockstore.Store the cache uses.
type Store interface {
	Get(ctx context.Context, k blockstore.Key, off, limit int64) ([]byte, blockstore.Meta, error)
	Put(ctx context.Context, k blockstore.Key, data []byte, m blockstore.Meta) error
	Has(k blockstore.Key) (int64, bool)
	Stats() blockstore.Stats
}

// Origin reads objects of one volume from its object store.
type Origin interface {
	Get(ctx context.Context, key string, off, limit int64) (io.ReadCloser, error)
}

// Volume is a JuiceFS volume the cache serves.
type Volume struct {
	peer.Volume // name, UUID, storage type and block size, as the protocol names it
	// ExactSize is true when objects are stored as plain bytes (no
	// compression, no encryption), so a block's length must equal the size
	// in its key and a short origin read is caught.
	ExactSize bool
	Origin    Origin
}

// Defaults of Options.
const (
	DefaultOriginConcurrency = 16
	DefaultFetchTimeout      = 2 * time.Minute
	DefaultReadChunkSize     = 256 << 10
	// DefaultOriginLogInterval is the shortest time between two
	// origin-failure log lines of one volume.
	DefaultOriginLogInterval = time.Minute
)

// Options configures a Cache.
type Options struct {
	// Store holds the node's blocks. Required.
	Store Store
	// Volumes the cache serves. At least one, each with a name, a UUID and
	// an origin, no name or UUID twice.
	Volumes []Volume
	// OriginConcurrency bounds concurrent origin fetches (default
	// DefaultOriginConcurrency). Fetches for reads go before fetches for
	// Warm calls, and Warm calls never hold more than
	// WarmSlots(OriginConcurrency) of them: see originSlots.
	OriginConcurrency int
	// OriginBandwidth caps origin bytes per second (default 0: none).
	OriginBandwidth int64
	// FetchTimeout bounds one origin fetch, independent of the callers
	// waiting for it (default DefaultFetchTimeout).
	FetchTimeout time.Duration
	// ReadChunkSize sizes the reads of an origin object, at most 1 MiB a
	// read (default DefaultReadChunkSize).
	ReadChunkSize int
	// OriginLogInterval is the shortest time between two origin-failure
	// log lines of one volume (default DefaultOriginLogInterval).
	OriginLogInterval time.Duration
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registerer receives the cache's metrics (default: none).
	Registerer prometheus.Registerer
	// Clock times the origin-failure log and the fetch histogram
	// (default clock.Real()).
	Clock clock.Clock
}

// EnsureDefaults sets every zero-valued optional field to its default.
func (o *Options) EnsureDefaults() {
	if o.OriginConcurrency == 0 {
		o.OriginConcurrency = DefaultOriginConcurrency
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.ReadChunkSize == 0 {
		o.ReadChunkSize = DefaultReadChunkSize
	}
	if o.OriginLogInterval == 0 {
		o.OriginLogInterval = DefaultOriginLogInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o.
func (o *Options) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if len(o.Volumes) == 0 {
		errs = append(errs, errors.New("at least one volume is required"))
	}
	seen := map[string]bool{}
	for _, v := range o.Volumes {
		if v.Name == "" || v.UUID == "" || v.Origin == nil {
			errs = append(errs, fmt.Errorf("volume %q needs a name, a uuid and an origin", v.Name))
			continue
		}
		if seen[v.Name] || seen[v.UUID] {
			errs = append(errs, fmt.Errorf("volume %q configured twice", v.Name))
		}
		seen[v.Name], seen[v.UUID] = true, true
	}
	if o.OriginConcurrency < 0 || o.OriginBandwidth < 0 || o.FetchTimeout < 0 || o.ReadChunkSize < 0 || o.OriginLogInterval < 0 {
		errs = append(errs, errors.New("origin concurrency, bandwidth, fetch timeout, read chunk size and log interval must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache: invalid options: %w", err)
	}
	return nil
}
