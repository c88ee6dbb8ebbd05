package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// The client side of the data plane (dataplane.go).

// dataConns is a client's pool of authenticated data-plane connections to
// one node.
type dataConns struct {
	addr     string
	token    []byte
	acceptS2 bool
	mu       sync.Mutex
	idle     []*dataConn
}

type dataConn struct {
	net.Conn
	r *bufio.Reader
}

const maxIdleDataConns = 8

func (p *dataConns) get(ctx context.Context) (*dataConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial %s: %v", p.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &dataConn{Conn: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	hello := append([]byte(dataMagic), 0, 0)
	binary.BigEndian.PutUint16(hello[len(dataMagic):], uint16(len(p.token)))
	if _, err := nc.Write(append(hello, p.token...)); err != nil {
		nc.Close()
		return nil, status.Errorf(codes.Unavailable, "data plane %s: %v", p.addr, err)
	}
	if err := readReplyStatus(c.r); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (p *dataConns) put(c *dataConn) {
	c.SetDeadline(time.Time{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdleDataConns {
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

func (p *dataConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// readReplyStatus reads a code and, for a non-zero code, its message, as a
// gRPC status error.
func readReplyStatus(r *bufio.Reader) error {
	code, err := r.ReadByte()
	if err != nil {
		return status.Errorf(codes.Unavailable, "data plane: %v", err)
	}
	if code == 0 {
		return nil
	}
	msg, err := readString(r)
	if err != nil {
		return status.Errorf(codes.Unavailable, "data plane: %v", err)
	}
	if int(code) > int(codes.Unauthenticated) {
		return fmt.Errorf("%w: status code %d", ErrProtocol, code)
	}
	return status.Error(codes.Code(code), string(msg))
}

// readData reads bytes [off, off+limit) of key over the data plane.
func (p *dataConns) read(ctx context.Context, volume, key string, off, limit int64) ([]byte, ReadInfo, error) {
	dl, _ := ctx.Deadline()
	c, err := p.get(ctx)
	if err != nil {
		return nil, ReadInfo{}, err
	}
	ok := false
	defer func() {
		if ok {
			p.put(c)
		} else {
			c.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(dl)
	if len(volume) > maxDataString || len(key) > maxDataString {
		return nil, ReadInfo{}, status.Errorf(codes.InvalidArgument, "volume or key longer than %d bytes", maxDataString)
	}
	req := appendDataRequest(nil, dataRequest{volume: volume, key: key, off: off, limit: limit, deadlineNanos: dl.UnixNano(), acceptS2: p.acceptS2})
	if _, err := c.Write(req); err != nil {
		return nil, ReadInfo{}, ctxOr(ctx, status.Errorf(codes.Unavailable, "data plane %s: %v", p.addr, err))
	}
	if err := readReplyStatus(c.r); err != nil {
		if _, isStatus := status.FromError(err); isStatus && status.Code(err) != codes.Unavailable {
			ok = true // a clean error answer leaves the connection usable
		}
		return nil, ReadInfo{}, ctxOr(ctx, err)
	}
	var hdr [8 + 8 + 1 + 1 + 4 + 4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, ReadInfo{}, ctxOr(ctx, status.Errorf(codes.Unavailable, "data plane %s: %v", p.addr, err))
	}
	size, length := int64(binary.BigEndian.Uint64(hdr[0:])), int64(binary.BigEndian.Uint64(hdr[8:]))
	wire := int64(binary.BigEndian.Uint32(hdr[22:]))
	if length < 0 || length > 64<<20 || wire > 64<<20 || (hdr[17]&1 == 0 && wire != length) {
		return nil, ReadInfo{}, fmt.Errorf("%w: bad length %d (wire %d)", ErrProtocol, length, wire)
	}
	buf := make([]byte, wire)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, ReadInfo{}, ctxOr(ctx, status.Errorf(codes.Unavailable, "data plane %s: %v", p.addr, err))
	}
	info := ReadInfo{ObjectSize: size, Source: peerpb.Source(hdr[16]), WireBytes: wire}
	if hdr[17]&1 != 0 {
		n, err := s2.DecodedLen(buf)
		if err != nil || int64(n) != length {
			return nil, info, fmt.Errorf("%w: bad s2 payload", ErrProtocol)
		}
		if buf, err = s2.Decode(nil, buf); err != nil {
			return nil, info, fmt.Errorf("%w: s2: %v", ErrProtocol, err)
		}
	}
	if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[18:]) {
		return nil, info, fmt.Errorf("read %s from %s: %w", key, p.addr, ErrChecksum)
	}
	ok = true
	return buf, info, nil
}

// ctxOr prefers the context's error, so a cancelled read reports
// Canceled or DeadlineExceeded.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	// The connection's deadline is the context's; its timeout can fire a
	// moment before the context's timer.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	return err
}
