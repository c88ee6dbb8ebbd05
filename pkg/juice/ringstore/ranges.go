package ringstore

import (
	"errors"
	"fmt"
)

// MaxObjectSize bounds the stored size of a data block object: JuiceFS
// blocks are at most 16 MiB before compression or encryption, and the peer
// protocol refuses answers above 64 MiB. A range reaching past it reaches
// past any block's end.
const MaxObjectSize = 64 << 20

// ErrBadRange is returned for a range no block object can have.
var ErrBadRange = errors.New("invalid block range")

// normRange maps the range of a JuiceFS Get, [off, off+limit) with
// limit <= 0 meaning "to the end", to the peer protocol's, where the end is
// limit -1 (0 is an empty range there). It never computes off+limit, so
// no input overflows: a limit reaching past MaxObjectSize becomes -1 (the
// same bytes, the rest of the block), and an offset past MaxObjectSize or
// a negative one is ErrBadRange before anything is asked of an owner or the
// origin.
func normRange(off, limit int64) (int64, int64, error) {
	if off < 0 || off > MaxObjectSize {
		return 0, 0, fmt.Errorf("%w: offset %d outside [0, %d]", ErrBadRange, off, int64(MaxObjectSize))
	}
	if limit <= 0 || limit > MaxObjectSize-off {
		limit = -1
	}
	return off, limit, nil
}

// checkLength refuses an answer longer than the range asked for (limit -1:
// longer than any block object).
func checkLength(n int, limit int64) error {
	if limit < 0 {
		limit = MaxObjectSize
	}
	if int64(n) > limit {
		return fmt.Errorf("%w: %d bytes for a range of at most %d", ErrBadRange, n, limit)
	}
	return nil
}
