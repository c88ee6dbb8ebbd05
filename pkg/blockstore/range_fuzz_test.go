package blockstore

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

// FuzzRange checks Range against the same arithmetic done in arbitrary
// precision: it never overflows, and its result or error is the exact one.
func FuzzRange(f *testing.F) {
	for _, s := range [][3]int64{
		{0, -1, 0}, {0, 0, 0}, {1, math.MaxInt64, 4 << 20}, {math.MaxInt64, math.MaxInt64, 4 << 20},
		{4 << 20, 1, 4 << 20}, {4<<20 + 1, 1, 4 << 20}, {-1, 1, 10}, {0, -2, 10},
		{math.MinInt64, math.MinInt64, math.MaxInt64}, {5, 100, 1 << 20},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, off, limit, size int64) {
		start, end, err := Range(off, limit, size)
		switch {
		case size < 0 || off < 0 || limit < -1:
			if !errors.Is(err, ErrInvalidRange) {
				t.Fatalf("Range(%d, %d, %d) = %d, %d, %v; want ErrInvalidRange", off, limit, size, start, end, err)
			}
			return
		case off > size:
			if !errors.Is(err, ErrRange) {
				t.Fatalf("Range(%d, %d, %d) = %d, %d, %v; want ErrRange", off, limit, size, start, end, err)
			}
			return
		case err != nil:
			t.Fatalf("Range(%d, %d, %d): %v", off, limit, size, err)
		}
		want := big.NewInt(size)
		if limit >= 0 {
			if e := new(big.Int).Add(big.NewInt(off), big.NewInt(limit)); e.Cmp(want) < 0 {
				want = e
			}
		}
		if start != off || !want.IsInt64() || end != want.Int64() || start > end || end > size {
			t.Fatalf("Range(%d, %d, %d) = [%d, %d), want [%d, %s)", off, limit, size, start, end, off, want)
		}
	})
}
