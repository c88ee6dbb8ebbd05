package peer

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// ErrChecksum is returned when the bytes a node sent do not match the
// checksum it sent with them.
var ErrChecksum = errors.New("checksum mismatch")

// ErrProtocol is returned for a response that breaks the protocol.
var ErrProtocol = errors.New("peer protocol violation")

// DefaultCallTimeout is the deadline given to calls whose context has none.
const DefaultCallTimeout = 30 * time.Second

// ClientOptions configures a Client.
type ClientOptions struct {
	// Token is the cluster token. Required.
	Token []byte
	// AcceptS2 lets nodes send s2-compressed chunks of compressible
	// blocks (default false).
	AcceptS2 bool
	// GRPCReads makes Read use the gRPC streaming call instead of the data
	// plane beside it (dataplane.go), which is several times faster
	// (default false: the data plane).
	GRPCReads bool
}

// EnsureDefaults sets every zero-valued optional field to its default:
// every field's zero value is its default, so it changes nothing. It is
// here so that all Options types are used the same way.
func (o *ClientOptions) EnsureDefaults() {}

// Validate checks o. Its error is ValidateToken's, unwrapped, as Dial
// has always returned it (callers print and match it).
func (o *ClientOptions) Validate() error { return ValidateToken(o.Token) }

// Client calls one node.
type Client struct {
	addr string
	conn *grpc.ClientConn
	rpc  peerpb.PeerClient
	data *dataConns
	o    ClientOptions
}

// Dial returns a client for the node at addr. It does not wait for the
// connection.
func Dial(addr string, o ClientOptions) (*Client, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(TokenCredentials(o.Token)),
		grpc.WithInitialWindowSize(8<<20),
		grpc.WithInitialConnWindowSize(32<<20),
		grpc.WithWriteBufferSize(256<<10),
		grpc.WithReadBufferSize(1<<20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn, rpc: peerpb.NewPeerClient(conn), o: o,
		data: &dataConns{addr: addr, token: o.Token, acceptS2: o.AcceptS2}}, nil
}

// Addr is the node's address.
func (c *Client) Addr() string { return c.addr }

// Close closes the connections.
func (c *Client) Close() error {
	c.data.close()
	return c.conn.Close()
}

// withDeadline gives ctx the default deadline if it has none: every call
// carries one.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultCallTimeout)
}

// ReadInfo describes a completed Read.
type ReadInfo struct {
	ObjectSize int64
	Source     peerpb.Source
	WireBytes  int64 // payload bytes received, after s2
}

// Read returns bytes [off, off+limit) of the object key of volume (limit <
// 0: to the end), verified against the node's checksum.
func (c *Client) Read(ctx context.Context, volume, key string, off, limit int64) ([]byte, ReadInfo, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	if !c.o.GRPCReads {
		return c.data.read(ctx, volume, key, off, limit)
	}
	stream, err := c.rpc.Read(ctx, &peerpb.ReadRequest{Volume: volume, Key: key, Offset: off, Limit: limit, AcceptS2: c.o.AcceptS2})
	if err != nil {
		return nil, ReadInfo{}, err
	}
	var (
		info ReadInfo
		buf  []byte
		got  bool
	)
	for {
		ch, err := stream.Recv()
		if err == io.EOF {
			return nil, info, fmt.Errorf("%w: stream ended before the last chunk", ErrProtocol)
		}
		if err != nil {
			return nil, info, err
		}
		if !got {
			got = true
			if ch.Length < 0 || ch.Length > 64<<20 {
				return nil, info, fmt.Errorf("%w: bad length %d", ErrProtocol, ch.Length)
			}
			info.ObjectSize, info.Source = ch.ObjectSize, ch.Source
			buf = make([]byte, 0, ch.Length)
		}
		info.WireBytes += int64(len(ch.Data))
		data := ch.Data
		if ch.S2 {
			n, err := s2.DecodedLen(data)
			if err != nil || len(buf)+n > cap(buf) {
				return nil, info, fmt.Errorf("%w: bad s2 chunk", ErrProtocol)
			}
			if data, err = s2.Decode(buf[len(buf):cap(buf)], data); err != nil {
				return nil, info, fmt.Errorf("%w: s2: %v", ErrProtocol, err)
			}
		}
		if len(buf)+len(data) > cap(buf) {
			return nil, info, fmt.Errorf("%w: more bytes than announced", ErrProtocol)
		}
		buf = append(buf, data...)
		if ch.Last {
			if len(buf) != cap(buf) {
				return nil, info, fmt.Errorf("%w: got %d of %d bytes", ErrProtocol, len(buf), cap(buf))
			}
			if crc32.Checksum(buf, castagnoli) != ch.Crc32C {
				return nil, info, fmt.Errorf("read %s from %s: %w", key, c.addr, ErrChecksum)
			}
			return buf, info, nil
		}
	}
}

// Warm asks the node to hold keys of volume.
func (c *Client) Warm(ctx context.Context, volume string, keys []string) ([]*peerpb.WarmResult, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	r, err := c.rpc.Warm(ctx, &peerpb.WarmRequest{Volume: volume, Keys: keys})
	if err != nil {
		return nil, err
	}
	if len(r.Results) != len(keys) {
		return nil, fmt.Errorf("%w: %d results for %d keys", ErrProtocol, len(r.Results), len(keys))
	}
	return r.Results, nil
}

// Has returns the stored size of each key, or -1 where the node does not
// hold it.
func (c *Client) Has(ctx context.Context, volume string, keys []string) ([]int64, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	r, err := c.rpc.Has(ctx, &peerpb.HasRequest{Volume: volume, Keys: keys})
	if err != nil {
		return nil, err
	}
	if len(r.Sizes) != len(keys) {
		return nil, fmt.Errorf("%w: %d sizes for %d keys", ErrProtocol, len(r.Sizes), len(keys))
	}
	return r.Sizes, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*peerpb.StatusResponse, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	return c.rpc.Status(ctx, &peerpb.StatusRequest{})
}
