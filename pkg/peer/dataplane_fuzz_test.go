package peer

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"testing"
)

// FuzzDataPlaneRequest feeds arbitrary bytes to the data-plane request
// decoder: it never panics, never returns a string longer than
// maxDataString, and a request it accepts encodes back to exactly the
// bytes it consumed.
func FuzzDataPlaneRequest(f *testing.F) {
	valid := appendDataRequest(nil, dataRequest{volume: "models", key: "chunks/0/0/1_0_4194304", off: 1, limit: math.MaxInt64, deadlineNanos: math.MaxInt64, acceptS2: true})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0x10, 0x01, 'a'})
	f.Add(appendDataRequest(nil, dataRequest{off: math.MinInt64, limit: -2, deadlineNanos: -1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		req, err := readDataRequest(r)
		if err != nil {
			if len(in) >= 2 && int(in[0])<<8|int(in[1]) > maxDataString && !errors.Is(err, ErrProtocol) {
				t.Fatalf("oversized volume string: %v, want ErrProtocol", err)
			}
			return
		}
		if len(req.volume) > maxDataString || len(req.key) > maxDataString {
			t.Fatalf("accepted strings of %d and %d bytes", len(req.volume), len(req.key))
		}
		if enc := appendDataRequest(nil, req); !bytes.HasPrefix(in, enc) {
			t.Fatalf("decoded %+v re-encodes to %x, not a prefix of %x", req, enc, in)
		}
		_ = checkRange(req.off, req.limit) // never panics for any decoded range
	})
}
