package blockstore

import "github.com/ringcache/ringcache/pkg/blockstore/blockrange"

// ErrInvalidRange is returned by Range (and so by Get) for a negative
// offset or a limit below -1: a request no block can satisfy.
var ErrInvalidRange = blockrange.ErrInvalid

// Range is blockrange.Range: the bounds [start, end) of the bytes a read
// of limit bytes from offset off returns from a block of size bytes
// (ErrRange for an offset beyond it, ErrInvalidRange for a negative offset
// or a limit below -1). The check lives in the leaf package blockrange so
// that the peer protocol shares it without importing the store.
func Range(off, limit, size int64) (start, end int64, err error) {
	return blockrange.Range(off, limit, size)
}
