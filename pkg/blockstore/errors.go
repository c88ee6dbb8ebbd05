package blockstore

import (
	"errors"

	"github.com/ringcache/ringcache/pkg/blockstore/blockrange"
)

var (
	// ErrNotFound is returned by Get when the block is not in the store.
	ErrNotFound = errors.New("blockstore: block not found")
	// ErrCorrupt is returned by Get when the block's file failed
	// verification; the file has been removed and the next Get misses.
	ErrCorrupt = errors.New("blockstore: corrupt block")
	// ErrNoSpace is returned by Put when the block cannot be stored for
	// lack of room: the disk is full (ENOSPC, which the error wraps too),
	// its free space is below Options.MinFreeBytes and evicting blocks
	// cannot raise it enough, or Puts in progress hold all the capacity.
	ErrNoSpace = errors.New("blockstore: no space")
	// ErrTooLarge is returned by Put for a block larger than
	// Options.MaxBlockSize or Options.CapacityBytes.
	ErrTooLarge = errors.New("blockstore: block too large")
	// ErrRange is returned by Get for an offset outside the block.
	ErrRange = blockrange.ErrOutOfRange
	// ErrClosed is returned by operations on a closed Store.
	ErrClosed = errors.New("blockstore: store closed")
	// ErrInvalidKey is returned by Put for a key that cannot be stored:
	// an empty Object, or a Volume or Object longer than MaxKeyPartLen.
	ErrInvalidKey = errors.New("blockstore: invalid key")
)
