package peer

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// batchKeysField is the field number of keys in HasRequest and
// WarmRequest.
const batchKeysField = 2

// countingCodec is the server's proto codec: it counts the keys of a Has
// or Warm request on the wire and refuses more than MaxBatch before
// decoding any, so a request of many empty keys (2 bytes each on the wire,
// a 16-byte string header each decoded) cannot make the server allocate
// eight times its size.
type countingCodec struct{ encoding.CodecV2 }

func newCountingCodec() countingCodec {
	return countingCodec{encoding.GetCodecV2(proto.Name)}
}

func (c countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *peerpb.HasRequest, *peerpb.WarmRequest:
		b := data.Materialize() // at most maxRecvMsgSize
		if err := checkBatchKeys(b); err != nil {
			return err
		}
		return protobuf.Unmarshal(b, m.(protobuf.Message))
	}
	return c.CodecV2.Unmarshal(data, v)
}

// checkBatchKeys walks the top-level fields of an encoded batch request
// and refuses more than MaxBatch keys, or a malformed message.
func checkBatchKeys(b []byte) error {
	keys := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return status.Error(codes.InvalidArgument, "malformed request")
		}
		b = b[n:]
		if num == batchKeysField && typ == protowire.BytesType {
			if keys++; keys > MaxBatch {
				return status.Errorf(codes.InvalidArgument, "want 1 to %d keys, got more", MaxBatch)
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return status.Error(codes.InvalidArgument, "malformed request")
		}
		b = b[n:]
	}
	return nil
}
