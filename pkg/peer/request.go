package peer

import (
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/blockstore/blockrange"
)

// The checks of a request, the same for both transports (the gRPC Read,
// Has and Warm, and the data plane), all made before the cache is called.

// maxKeyLen bounds a block key: the longest canonical one
// (chunks/{id/1e6}/{id/1e3}/{id}_{index}_{size} with a 20-digit id, a
// 19-digit index and an 8-digit size) is 91 bytes.
const maxKeyLen = 128

// validateKey refuses a key that is not a canonical block key.
func validateKey(key string) error {
	if len(key) > maxKeyLen {
		return status.Errorf(codes.InvalidArgument, "key: longer than %d bytes", maxKeyLen)
	}
	if _, err := blockkey.Parse(key); err != nil {
		return status.Errorf(codes.InvalidArgument, "key: %v", err)
	}
	return nil
}

// Ranges on both transports mean what blockrange.Range says, on a hit and
// on a miss alike: limit -1 reads to the end, a limit past the end is cut
// at the end, offset == size answers OK with no bytes, offset > size is
// OutOfRange, a negative offset or a limit below -1 is InvalidArgument.

// checkRange refuses, before any lookup, ranges no block can satisfy.
func checkRange(off, limit int64) error {
	if _, _, err := blockrange.Range(off, limit, maxRangeCheckSize); errors.Is(err, blockrange.ErrInvalid) {
		return RangeError(err, off, 0)
	}
	return nil
}

// maxRangeCheckSize makes checkRange test only the arguments' signs.
const maxRangeCheckSize = 1<<63 - 1

// RangeError maps a blockrange.Range error for a read from off of an
// object of size bytes to its gRPC status: the answer of both transports
// to a range the block cannot satisfy.
func RangeError(err error, off, size int64) error {
	if errors.Is(err, blockrange.ErrInvalid) {
		return status.Errorf(codes.InvalidArgument, "bad range: %v", err)
	}
	return status.Errorf(codes.OutOfRange, "offset %d beyond object of %d bytes", off, size)
}

// checkBlockRange checks the key and the range of a read.
func checkBlockRange(key string, off, limit int64) error {
	if err := validateKey(key); err != nil {
		return err
	}
	return checkRange(off, limit)
}

// volume resolves a name or UUID.
func (s *Server) volume(id string) (Volume, error) {
	if id == "" {
		return Volume{}, status.Error(codes.InvalidArgument, "volume is required")
	}
	v, ok := s.volumes[id]
	if !ok {
		return Volume{}, status.Errorf(codes.NotFound, "unknown volume %q (this node serves: %s)", id, strings.Join(s.names, ", "))
	}
	return v, nil
}

// MaxBatch bounds the keys of one Warm or Has call.
const MaxBatch = 4096

// checkBatch checks the keys and the volume of a Has or Warm call.
func (s *Server) checkBatch(volume string, keys []string) (Volume, error) {
	if len(keys) == 0 || len(keys) > MaxBatch {
		return Volume{}, status.Errorf(codes.InvalidArgument, "want 1 to %d keys, got %d", MaxBatch, len(keys))
	}
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return Volume{}, err
		}
	}
	return s.volume(volume)
}

// maxBatch is MaxBatch, under the name the refusal tests use.
const maxBatch = MaxBatch
