package peer

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// FuzzCheckBatchKeys: whatever checkBatchKeys lets through decodes to at
// most MaxBatch keys, and it never panics.
func FuzzCheckBatchKeys(f *testing.F) {
	ok, _ := proto.Marshal(&peerpb.HasRequest{Volume: "models", Keys: []string{key(1, 1000), ""}})
	f.Add(ok)
	f.Add([]byte{0x12, 0x00, 0x12, 0x00})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkBatchKeys(b) != nil {
			return
		}
		var m peerpb.HasRequest
		if proto.Unmarshal(b, &m) == nil && len(m.Keys) > MaxBatch {
			t.Fatalf("%d keys let through", len(m.Keys))
		}
	})
}
