package peer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The data plane carries block reads on the peer port beside gRPC, for
// throughput: gRPC streams a 4 MiB block as 16 KiB HTTP/2 frames and copies
// it through protobuf, which costs several times the CPU of the bytes
// themselves. A connection whose first bytes are dataMagic speaks this
// protocol; every other connection is handed to gRPC.
//
// After the magic the client authenticates once per connection:
//
//	client: u16 token length, token
//	server: u8 code (0 OK; else a gRPC code, u16 message length, message)
//
// then sends requests one at a time, each answered before the next:
//
//	client: u16 len, volume, u16 len, key, i64 offset, i64 limit,
//	        i64 deadline (unix ns, required), u8 flags (1: accepts s2)
//	server: u8 code (a gRPC code), then
//	        code 0:  i64 object size, i64 length, u8 source, u8 flags
//	                 (1: s2), u32 crc32c of the length bytes, u32 wire
//	                 length, the payload (s2-compressed if flagged)
//	        else:    u16 message length, message
//
// The checks, the answer budget and the cache behind them are the same as
// for the gRPC Read; the CRC32C covers the bytes sent and the client
// verifies it. Like the gRPC Read, s2 is used only for blocks marked
// compressible, for clients that accept it, and only when it shrinks the
// payload.
const dataMagic = "RCDP"

const (
	maxDataString   = 4096
	dataIdleTimeout = 5 * time.Minute
)

// splitListener hands connections that start with dataMagic to data and the
// others to grpcConns.
type splitListener struct {
	net.Listener
	grpcConns chan net.Conn
	data      func(net.Conn)
	closeOnce sync.Once
	done      chan struct{}
}

func newSplitListener(l net.Listener, data func(net.Conn)) *splitListener {
	s := &splitListener{Listener: l, grpcConns: make(chan net.Conn), data: data, done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *splitListener) loop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			s.Close()
			return
		}
		go s.route(c)
	}
}

func (s *splitListener) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, len(dataMagic))
	n, err := io.ReadFull(c, head)
	c.SetReadDeadline(time.Time{})
	if err != nil && n == 0 {
		c.Close()
		return
	}
	if string(head[:n]) == dataMagic {
		s.data(c)
		return
	}
	pc := &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(head[:n]), c)}
	select {
	case s.grpcConns <- pc:
	case <-s.done:
		c.Close()
	}
}

// Accept returns the next gRPC connection.
func (s *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.grpcConns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *splitListener) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.Listener.Close()
	})
	return err
}

// prefixConn replays the bytes read to route a connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveData serves one data-plane connection until it fails or idles.
// A connection answers one request at a time and reads the next only
// after the answer is written, so it holds at most one answer.
func (s *Server) serveData(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	release, ok := s.dataConns.acquire(c.RemoteAddr())
	if !ok {
		s.refused.refuse(reasonTooManyConns, c.RemoteAddr(), "data plane")
		writeAuthReply(c, codes.ResourceExhausted, "too many data-plane connections")
		return
	}
	defer release()
	r := bufio.NewReaderSize(c, 4096)
	tok, err := readString(r)
	if err != nil {
		s.dataFrameError(c, err, "token")
		return
	}
	if len(tok) == 0 || subtle.ConstantTimeCompare(tok, s.o.Token) != 1 {
		reason := reasonBadToken
		if len(tok) == 0 {
			reason = reasonNoToken
		}
		s.refused.refuse(reason, c.RemoteAddr(), "data plane")
		s.countData(codes.Unauthenticated)
		writeAuthReply(c, codes.Unauthenticated, "missing or wrong cluster token")
		return
	}
	s.gate.authenticated(c.RemoteAddr())
	if err := writeAuthReply(c, codes.OK, ""); err != nil {
		return
	}
	for {
		c.SetDeadline(time.Now().Add(dataIdleTimeout))
		req, err := readDataRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) { // EOF between requests: the client closed
				s.dataFrameError(c, err, "request")
			}
			return
		}
		if err := s.answerData(ctx, c, req); err != nil {
			return
		}
	}
}

// dataFrameError records a connection that broke the protocol (a
// truncated message, an oversized string); an idle or closed connection is
// not one.
func (s *Server) dataFrameError(c net.Conn, err error, what string) {
	var ne net.Error
	switch {
	case errors.Is(err, net.ErrClosed), errors.As(err, &ne) && ne.Timeout():
		return
	case errors.Is(err, io.EOF) && what == "token":
		return // a probe that connected and sent the magic only
	}
	s.refused.refuse(reasonBadFrame, c.RemoteAddr(), fmt.Sprintf("data plane %s: %v", what, err))
}

type dataRequest struct {
	volume, key   string
	off, limit    int64
	deadlineNanos int64
	acceptS2      bool
}

func (s *Server) answerData(ctx context.Context, c net.Conn, req dataRequest) error {
	if req.deadlineNanos <= 0 {
		s.refused.refuse(reasonNoDeadline, c.RemoteAddr(), "data plane")
		return s.writeDataError(c, status.Error(codes.InvalidArgument, "call has no deadline"))
	}
	// The request's deadline bounds the call, and the server's own maximum
	// bounds the request's.
	now := time.Now()
	deadline := time.Unix(0, req.deadlineNanos)
	if max := now.Add(s.o.Limits.MaxCallTimeout); deadline.After(max) {
		deadline = max
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// The caller's host, for its share of the answer budget (byteBudget).
	ctx = grpcpeer.NewContext(ctx, &grpcpeer.Peer{Addr: c.RemoteAddr()})
	c.SetWriteDeadline(minTime(deadline, now.Add(s.o.Limits.MaxWriteTimeout)))
	if err := checkBlockRange(req.key, req.off, req.limit); err != nil {
		return s.writeDataError(c, err)
	}
	v, err := s.volume(req.volume)
	if err != nil {
		return s.writeDataError(c, err)
	}
	data, meta, release, err := s.read(ctx, v, req.key, req.off, req.limit)
	if err != nil {
		return s.writeDataError(c, err)
	}
	defer release()
	// Writing the answer gets at most MaxWriteTimeout from now.
	c.SetWriteDeadline(minTime(deadline, time.Now().Add(s.o.Limits.MaxWriteTimeout)))
	s.c.reads.Add(1)
	payload, flags := data, byte(0)
	if req.acceptS2 && meta.Compressible {
		if enc := s2.Encode(nil, data); len(enc) < len(data)*7/8 {
			payload, flags = enc, 1
		}
	}
	hdr := make([]byte, 1+8+8+1+1+4+4)
	binary.BigEndian.PutUint64(hdr[1:], uint64(meta.ObjectSize))
	binary.BigEndian.PutUint64(hdr[9:], uint64(len(data)))
	hdr[17], hdr[18] = byte(meta.Source), flags
	binary.BigEndian.PutUint32(hdr[19:], crc32.Checksum(data, castagnoli))
	binary.BigEndian.PutUint32(hdr[23:], uint32(len(payload)))
	bufs := net.Buffers{hdr, payload}
	if _, err := bufs.WriteTo(c); err != nil {
		return err
	}
	s.c.servedBytes.Add(int64(len(data)))
	s.c.wireBytes.Add(int64(len(payload)))
	s.countData(codes.OK)
	return nil
}

func (s *Server) writeDataError(c net.Conn, err error) error {
	st := status.Convert(err)
	s.countData(st.Code())
	msg := st.Message()
	if len(msg) > maxDataString {
		msg = msg[:maxDataString]
	}
	b := make([]byte, 0, 3+len(msg))
	b = append(b, byte(st.Code()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	_, werr := c.Write(b)
	return werr
}

func (s *Server) countData(code codes.Code) {
	if s.metrics != nil {
		s.metrics.requests.WithLabelValues("DataRead", code.String()).Inc()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func writeAuthReply(w io.Writer, code codes.Code, msg string) error {
	b := []byte{byte(code)}
	if code != codes.OK {
		b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
		b = append(b, msg...)
	}
	_, err := w.Write(b)
	return err
}

func readString(r *bufio.Reader) ([]byte, error) {
	var n uint16
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, err
	}
	if int(n) > maxDataString {
		return nil, fmt.Errorf("%w: string of %d bytes", ErrProtocol, n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func readDataRequest(r *bufio.Reader) (dataRequest, error) {
	vol, err := readString(r)
	if err != nil {
		return dataRequest{}, err
	}
	key, err := readString(r)
	if err != nil {
		return dataRequest{}, err
	}
	var nums [3]int64
	if err := binary.Read(r, binary.BigEndian, &nums); err != nil {
		return dataRequest{}, err
	}
	flags, err := r.ReadByte()
	if err != nil {
		return dataRequest{}, err
	}
	if flags&^1 != 0 {
		return dataRequest{}, fmt.Errorf("%w: unknown request flags %#x", ErrProtocol, flags)
	}
	return dataRequest{volume: string(vol), key: string(key), off: nums[0], limit: nums[1], deadlineNanos: nums[2], acceptS2: flags&1 != 0}, nil
}

// appendDataRequest appends the encoding of req, which readDataRequest
// decodes, to b. Its strings must not be longer than maxDataString.
func appendDataRequest(b []byte, req dataRequest) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(req.volume)))
	b = append(b, req.volume...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(req.key)))
	b = append(b, req.key...)
	b = binary.BigEndian.AppendUint64(b, uint64(req.off))
	b = binary.BigEndian.AppendUint64(b, uint64(req.limit))
	b = binary.BigEndian.AppendUint64(b, uint64(req.deadlineNanos))
	var flags byte
	if req.acceptS2 {
		flags = 1
	}
	return append(b, flags)
}
