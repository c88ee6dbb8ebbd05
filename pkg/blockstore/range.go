package blockstore

import (
	"errors"
	"fmt"
)

// ErrInvalidRange is returned by Range (and so by Get) for a negative
// offset or a limit below -1: a request no block can satisfy.
var ErrInvalidRange = errors.New("blockstore: invalid range")

// Range returns the bounds [start, end) of the bytes a read of limit bytes
// from offset off returns from a block of size bytes: limit -1 means "to
// the end", and a limit past the end is cut at the end. off == size is a
// valid empty read (start == end == size, like a read at end of file);
// off > size fails with ErrRange; off < 0 or limit < -1 fail with
// ErrInvalidRange. Every argument may be any int64: nothing overflows, and
// on success 0 <= start <= end <= size.
//
// It is the one range check of the block store and of both peer
// transports, so a range means the same on a hit and on a miss.
func Range(off, limit, size int64) (start, end int64, err error) {
	switch {
	case size < 0:
		return 0, 0, fmt.Errorf("%w: block of %d bytes", ErrInvalidRange, size)
	case off < 0 || limit < -1:
		return 0, 0, fmt.Errorf("%w: offset %d, limit %d", ErrInvalidRange, off, limit)
	case off > size:
		return 0, 0, fmt.Errorf("%w: offset %d in a block of %d bytes", ErrRange, off, size)
	}
	end = size
	if limit >= 0 && limit < size-off { // size-off >= 0: no overflow
		end = off + limit
	}
	return off, end, nil
}
