package ringstore

import (
	"math"
	"testing"
)

// FuzzNormRange: any (off, limit) JuiceFS may pass maps to a range within
// one block object, or ErrBadRange, without overflow.
func FuzzNormRange(f *testing.F) {
	for _, s := range [][2]int64{
		{0, -1}, {0, 0}, {1, math.MaxInt64}, {math.MaxInt64, 1}, {math.MinInt64, math.MinInt64},
		{-1, 1}, {MaxObjectSize, 1}, {MaxObjectSize - 1, 2}, {4 << 20, 4 << 20},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, off, limit int64) {
		o, l, err := normRange(off, limit)
		if err != nil {
			if off >= 0 && off <= MaxObjectSize {
				t.Fatalf("normRange(%d, %d) refused a valid offset: %v", off, limit, err)
			}
			return
		}
		if o != off || o < 0 || o > MaxObjectSize {
			t.Fatalf("normRange(%d, %d) offset %d", off, limit, o)
		}
		if l != -1 && (l <= 0 || l > MaxObjectSize-o) {
			t.Fatalf("normRange(%d, %d) limit %d reaches past MaxObjectSize", off, limit, l)
		}
		if limit > 0 && limit <= MaxObjectSize-off && l != limit {
			t.Fatalf("normRange(%d, %d) changed a range inside the block to %d", off, limit, l)
		}
	})
}

// FuzzParseEndpoint: any bucket string either fails with ErrBadEndpoint or
// parses into an endpoint that round-trips through String.
func FuzzParseEndpoint(f *testing.F) {
	f.Add(Endpoint{LocalNode: "127.0.0.1:9700", OriginStorage: "s3", OriginBucket: "https://s3/b", Volume: "u", Prefix: "m/", TokenFile: "/t", Owners: 2}.String())
	f.Add("ringcache://h:1/?storage=s3&bucket=b&volume=v&prefix=p/&token-file=/t&owners=99999999999999999999")
	f.Add("ringcache://[::1]:1/?storage=ringcache&bucket=b")
	f.Add("ringcache://h/?%zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		e2, err := ParseEndpoint(e.String())
		if err != nil {
			t.Fatalf("ParseEndpoint(%q) = %+v, whose String %q does not parse: %v", s, e, e.String(), err)
		}
		if e2 != e {
			t.Fatalf("round trip of %q: %+v != %+v", s, e2, e)
		}
	})
}
