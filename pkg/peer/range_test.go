package peer

import (
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestHostileRanges reads uncached and cached blocks with ranges whose
// end overflows int64, negative ranges and offsets at and past the end,
// over both transports: each answers with a status, never a panic, and
// offset == size answers the same on a miss and on a hit.
func TestHostileRanges(t *testing.T) {
	const size = 1 << 20
	data := randBytes(size)
	ranges := []struct {
		name       string
		off, limit int64
		code       codes.Code
		n          int
	}{
		{"overflowing end", 1, math.MaxInt64, codes.OK, size - 1},
		{"max offset, max limit", math.MaxInt64, math.MaxInt64, codes.OutOfRange, 0},
		{"offset at the end", size, 10, codes.OK, 0},
		{"offset at the end, to the end", size, -1, codes.OK, 0},
		{"offset past the end", size + 1, 1, codes.OutOfRange, 0},
		{"negative offset", -1, 10, codes.InvalidArgument, 0},
		{"min offset", math.MinInt64, math.MaxInt64, codes.InvalidArgument, 0},
		{"limit below -1", 0, -2, codes.InvalidArgument, 0},
		{"min limit", 0, math.MinInt64, codes.InvalidArgument, 0},
	}
	for _, transport := range []string{"data plane", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			objs := map[string][]byte{}
			for i := range ranges {
				objs[key(100+i, size)] = data
			}
			f := newFixture(t, objs, nil)
			c := f.client
			if transport == "grpc" {
				gc, err := Dial(f.addr, ClientOptions{Token: []byte(testToken), GRPCReads: true})
				if err != nil {
					t.Fatal(err)
				}
				defer gc.Close()
				c = gc
			}
			for i, r := range ranges {
				k := key(100+i, size)
				for _, state := range []string{"miss", "hit"} {
					got, _, err := c.Read(ctx10s(t), "models", k, r.off, r.limit)
					if status.Code(err) != r.code || len(got) != r.n {
						t.Errorf("%s, %s (%d, %d): %d bytes, %v; want %d bytes, %v", r.name, state, r.off, r.limit, len(got), err, r.n, r.code)
					}
					if r.code == codes.OK && string(got) != string(data[int(r.off):int(r.off)+r.n]) {
						t.Errorf("%s, %s: wrong bytes", r.name, state)
					}
					// Make the next read a hit.
					if _, _, err := c.Read(ctx10s(t), "models", k, 0, -1); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
