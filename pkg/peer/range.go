package peer

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockstore"
)

// Ranges on both transports mean what blockstore.Range says, on a hit and
// on a miss alike: limit -1 reads to the end, a limit past the end is cut
// at the end, offset == size answers OK with no bytes, offset > size is
// OutOfRange, a negative offset or a limit below -1 is InvalidArgument.

// checkRange refuses, before any lookup, ranges no block can satisfy.
func checkRange(off, limit int64) error {
	if _, _, err := blockstore.Range(off, limit, maxRangeCheckSize); errors.Is(err, blockstore.ErrInvalidRange) {
		return rangeStatus(err, off, 0)
	}
	return nil
}

// maxRangeCheckSize makes checkRange test only the arguments' signs.
const maxRangeCheckSize = 1<<63 - 1

// rangeStatus maps a blockstore.Range error for a read from off of an
// object of size bytes to its gRPC status.
func rangeStatus(err error, off, size int64) error {
	if errors.Is(err, blockstore.ErrInvalidRange) {
		return status.Errorf(codes.InvalidArgument, "bad range: %v", err)
	}
	return status.Errorf(codes.OutOfRange, "offset %d beyond object of %d bytes", off, size)
}
