package blockstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultMaxBlockSize is the default of Options.MaxBlockSize.
const DefaultMaxBlockSize = 64 << 20

// Options configures a Store.
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
	// cannot. 0 disables the floor.
	MinFreeBytes int64
	// MaxBlockSize bounds the size of one block; Put of larger data fails
	// with ErrTooLarge. Default DefaultMaxBlockSize.
	MaxBlockSize int64
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// FS is the file system the store uses. Default: OSFS.
	FS FS
	// Now is the clock used for block recency. Default time.Now.
	Now func() time.Time
}

// Validate checks o and fills in the defaults of unset optional fields.
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
	if o.MaxBlockSize == 0 {
		o.MaxBlockSize = DefaultMaxBlockSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
