// Package blockrange owns what a range of a block means: the one
// overflow-safe check that turns (offset, limit) into the bytes a read
// returns. It is a leaf (no block store code), so the peer protocol checks
// ranges the way the block store serves them without importing the store.
package blockrange

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid is returned by Range for a negative offset or a limit
	// below -1: a request no block can satisfy.
	ErrInvalid = errors.New("blockstore: invalid range")
	// ErrOutOfRange is returned by Range for an offset beyond the block.
	ErrOutOfRange = errors.New("blockstore: offset out of range")
)

// Range returns the bounds [start, end) of the bytes a read of limit bytes
// from offset off returns from a block of size bytes: limit -1 means "to
// the end", and a limit past the end is cut at the end. off == size is a
// valid empty read (start == end == size, like a read at end of file);
// off > size fails with ErrOutOfRange; off < 0 or limit < -1 fail with
// ErrInvalid. Every argument may be any int64: nothing overflows, and on
// success 0 <= start <= end <= size.
//
// It is the one range check of the block store and of both peer
// transports, so a range means the same on a hit and on a miss.
func Range(off, limit, size int64) (start, end int64, err error) {
	switch {
	case size < 0:
		return 0, 0, fmt.Errorf("%w: block of %d bytes", ErrInvalid, size)
	case off < 0 || limit < -1:
		return 0, 0, fmt.Errorf("%w: offset %d, limit %d", ErrInvalid, off, limit)
	case off > size:
		return 0, 0, fmt.Errorf("%w: offset %d in a block of %d bytes", ErrOutOfRange, off, size)
	}
	end = size
	if limit >= 0 && limit < size-off { // size-off >= 0: no overflow
		end = off + limit
	}
	return off, end, nil
}
