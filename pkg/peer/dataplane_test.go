package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBothTransports runs reads over the gRPC stream and over the data
// plane: same bytes, same errors, s2 only for compressible blocks.
func TestBothTransports(t *testing.T) {
	data := randBytes(3 << 20)
	text := bytes.Repeat([]byte("config: {\"layers\": 32}\n"), 50000)[:1<<20]
	k, kt := key(6, len(data)), key(8, len(text))
	f := newFixture(t, map[string][]byte{k: data, kt: text}, nil)
	grpcClient, err := Dial(f.addr, ClientOptions{Token: []byte(testToken), AcceptS2: true, GRPCReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer grpcClient.Close()
	for name, c := range map[string]*Client{"data plane": f.client, "grpc": grpcClient} {
		t.Run(name, func(t *testing.T) {
			for _, r := range []struct{ off, limit int64 }{{0, -1}, {5, 100}, {1 << 20, 1 << 20}, {3<<20 - 10, 100}, {0, 0}} {
				got, _, err := c.Read(ctx10s(t), "models", k, r.off, r.limit)
				end := int64(len(data))
				if r.limit >= 0 && r.off+r.limit < end {
					end = r.off + r.limit
				}
				if err != nil || !bytes.Equal(got, data[r.off:end]) {
					t.Errorf("range %+v: %d bytes, err %v", r, len(got), err)
				}
			}
			if _, _, err := c.Read(ctx10s(t), "other", k, 0, -1); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `unknown volume "other"`) {
				t.Errorf("unknown volume: %v", err)
			}
			if _, _, err := c.Read(ctx10s(t), "models", "chunks/../x", 0, -1); status.Code(err) != codes.InvalidArgument {
				t.Errorf("bad key: %v", err)
			}
			if _, _, err := c.Read(ctx10s(t), "models", k, int64(len(data))+1, -1); status.Code(err) != codes.OutOfRange {
				t.Errorf("offset past the end: %v", err)
			}
			got, info, err := c.Read(ctx10s(t), "models", kt, 0, -1)
			if err != nil || !bytes.Equal(got, text) || info.WireBytes >= int64(len(text))/2 {
				t.Errorf("compressible block: %d wire bytes for %d, err %v; want s2", info.WireBytes, len(text), err)
			}
			_, info, err = c.Read(ctx10s(t), "models", k, 0, -1)
			if err != nil || info.WireBytes != int64(len(data)) {
				t.Errorf("incompressible block: %d wire bytes for %d, err %v; want raw", info.WireBytes, len(data), err)
			}
		})
	}
}

// TestDataPlaneRefusesWithoutToken: a data-plane connection with a wrong
// token gets Unauthenticated and no data, and the origin is not touched.
func TestDataPlaneRefusesWithoutToken(t *testing.T) {
	k := key(7, 100)
	f := newFixture(t, map[string][]byte{k: randBytes(100)}, nil)
	for _, tok := range []string{"wrong-token-wrong-token", ""} {
		p := &dataConns{addr: f.addr, token: []byte(tok)}
		got, _, err := p.read(ctx10s(t), "models", k, 0, -1)
		if status.Code(err) != codes.Unauthenticated || got != nil {
			t.Errorf("token %q: got %d bytes, %v; want Unauthenticated", tok, len(got), err)
		}
	}
	if f.cache.count(k) != 0 {
		t.Error("an unauthenticated data-plane call reached the origin")
	}
}

// TestDataPlaneRequiresDeadline: a raw request without a deadline is
// refused with InvalidArgument.
func TestDataPlaneRequiresDeadline(t *testing.T) {
	k := key(9, 100)
	f := newFixture(t, map[string][]byte{k: randBytes(100)}, nil)
	c, err := net.DialTimeout("tcp", f.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte(dataMagic)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(testToken)))
	msg = append(msg, testToken...)
	msg = binary.BigEndian.AppendUint16(msg, 6)
	msg = append(msg, "models"...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(k)))
	msg = append(msg, k...)
	msg = binary.BigEndian.AppendUint64(msg, 0)
	msg = binary.BigEndian.AppendUint64(msg, ^uint64(0)) // limit -1
	msg = binary.BigEndian.AppendUint64(msg, 0)          // no deadline
	msg = append(msg, 0)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(io.LimitReader(c, 64))
	if len(reply) < 2 || reply[0] != 0 || codes.Code(reply[1]) != codes.InvalidArgument || !strings.Contains(string(reply), "deadline") {
		t.Errorf("reply %q; want auth OK then InvalidArgument about the deadline", reply)
	}
}

// TestDataPlaneBadChecksumIsRefused: a data-plane server whose bytes do not
// match its checksum is never believed.
func TestDataPlaneBadChecksumIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, len(dataMagic)+2+len(testToken)))
		c.Write([]byte{0}) // auth OK
		buf := make([]byte, 4096)
		c.Read(buf) // the request
		payload := []byte("hello")
		hdr := make([]byte, 1+8+8+1+1+4+4)
		binary.BigEndian.PutUint64(hdr[1:], 5)
		binary.BigEndian.PutUint64(hdr[9:], 5)
		binary.BigEndian.PutUint32(hdr[19:], 12345) // wrong crc32c
		binary.BigEndian.PutUint32(hdr[23:], 5)
		c.Write(append(hdr, payload...))
	}()
	c, err := Dial(l.Addr().String(), ClientOptions{Token: []byte(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _, err := c.Read(ctx10s(t), "models", key(1, 5), 0, -1)
	if !errors.Is(err, ErrChecksum) || got != nil {
		t.Fatalf("got %q, %v; want ErrChecksum and no bytes", got, err)
	}
}
