package blockstore

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ringcache/ringcache/pkg/clock"
)

// DefaultMaxBlockSize is the default of Options.MaxBlockSize: 64 MiB,
// JuiceFS's largest block size.
const DefaultMaxBlockSize = 64 << 20

// Options configures a Store. Dir and CapacityBytes are required; every
// other field is optional, its zero value meaning the default its comment
// states. Open takes Options by value and calls EnsureDefaults, then
// Validate.
type Options struct {
	// Dir is the directory holding the store; required, created if
	// missing. A Dir can be open in only one Store at a time.
	Dir string
	// CapacityBytes bounds the total bytes of block data kept; least
	// recently used blocks are evicted beyond it. Required, > 0.
	CapacityBytes int64
	// MinFreeBytes is the free-space floor of the file system holding Dir.
	// Put evicts blocks to keep the file system's available space above it
	// after the write, or refuses the block with ErrNoSpace when evicting
	// cannot. Default 0: no floor. Negative is invalid.
	MinFreeBytes int64
	// MaxBlockSize bounds the size of one block; Put of larger data fails
	// with ErrTooLarge. Default DefaultMaxBlockSize. Negative is invalid.
	MaxBlockSize int64
	// Logger receives the store's logs. Default: a logger discarding
	// everything.
	Logger *slog.Logger
	// FS is the file system the store uses. Default: OSFS.
	FS FS
	// Clock gives the time of block recency (the LRU order and the block
	// files' modification times). Default: clock.Real().
	Clock clock.Clock
}

// EnsureDefaults sets every zero-valued optional field of o to its
// default. It never fails and is idempotent; it checks nothing (Validate
// does).
func (o *Options) EnsureDefaults() {
	if o.MaxBlockSize == 0 {
		o.MaxBlockSize = DefaultMaxBlockSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o, before or after EnsureDefaults, without changing it,
// and reports every problem at once: "blockstore: invalid options: " and
// the problems, one per line.
func (o *Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("missing Dir"))
	}
	if o.CapacityBytes <= 0 {
		errs = append(errs, fmt.Errorf("want CapacityBytes > 0, got %d", o.CapacityBytes))
	}
	if o.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("want MinFreeBytes >= 0, got %d", o.MinFreeBytes))
	}
	if o.MaxBlockSize < 0 {
		errs = append(errs, fmt.Errorf("want MaxBlockSize >= 0 (0 means %d), got %d", DefaultMaxBlockSize, o.MaxBlockSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blockstore: invalid options: %w", err)
	}
	return nil
}
