package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// rawAuth sends authorization exactly as given.
type rawAuth string

func (a rawAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{authHeader: string(a)}, nil
}
func (rawAuth) RequireTransportSecurity() bool { return false }

func dialRaw(t *testing.T, addr string, opts ...grpc.DialOption) peerpb.PeerClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return peerpb.NewPeerClient(conn)
}

// TestBareTokenRefused: the token without the "Bearer " scheme is refused
// like a wrong one.
func TestBareTokenRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	for name, auth := range map[string]string{
		"bare token":       testToken,
		"lowercase scheme": "bearer " + testToken,
		"scheme only":      "Bearer ",
		"other scheme":     "Basic " + testToken,
	} {
		c := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(rawAuth(auth)))
		if _, err := c.Status(ctx10s(t), &peerpb.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	c := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(rawAuth("Bearer "+testToken)))
	if _, err := c.Status(ctx10s(t), &peerpb.StatusRequest{}); err != nil {
		t.Errorf("Bearer token: %v", err)
	}
}

// TestUnauthenticatedCallNotRead: a call without the token is refused from
// its headers, before its message is read: an oversized message gets
// Unauthenticated, not ResourceExhausted (which is what reading it would
// give, as an authenticated caller sees).
func TestUnauthenticatedCallNotRead(t *testing.T) {
	f := newFixture(t, nil, nil)
	big := &peerpb.HasRequest{Volume: "models", Keys: make([]string, 0, 60000)}
	for i := range 60000 {
		big.Keys = append(big.Keys, key(i+1, 4<<20)+strings.Repeat("x", 70))
	}
	if n := proto.Size(big); n <= 4<<20 {
		t.Fatalf("request of %d bytes, want > 4 MiB (the old limit)", n)
	}
	for name, opts := range map[string][]grpc.DialOption{
		"no token":    nil,
		"wrong token": {grpc.WithPerRPCCredentials(TokenCredentials([]byte("wrong-token-wrong-token")))},
		"bare token":  {grpc.WithPerRPCCredentials(rawAuth(testToken))},
	} {
		_, err := dialRaw(t, f.addr, opts...).Has(ctx10s(t), big)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	_, err := dialRaw(t, f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken)))).Has(ctx10s(t), big)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("authenticated oversized call: %v, want ResourceExhausted", err)
	}
}

// TestLargestRequestFits: the largest legitimate Has and Warm calls fit in
// maxRecvMsgSize, with room to spare.
func TestLargestRequestFits(t *testing.T) {
	keys := make([]string, maxBatch)
	for i := range keys {
		keys[i] = strings.Repeat("k", maxKeyLen)
	}
	vol := strings.Repeat("v", maxDataString)
	for _, m := range []proto.Message{&peerpb.HasRequest{Volume: vol, Keys: keys}, &peerpb.WarmRequest{Volume: vol, Keys: keys}} {
		if n := proto.Size(m); n > maxRecvMsgSize-64<<10 { // 64 KiB of headroom
			t.Errorf("%T of %d keys is %d bytes, limit %d", m, maxBatch, n, maxRecvMsgSize)
		}
	}
	if n := len(key(1<<62, 16<<20)); n > maxKeyLen {
		t.Errorf("key of %d bytes, limit %d", n, maxKeyLen)
	}
}

// TestRefusalsCounted: every kind of refusal, on both transports, is
// counted by reason on the registry and logged with the peer's address.
func TestRefusalsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	f := newFixture(t, nil, func(o *ServerOptions) {
		o.Registerer = reg
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Limits.MaxDataConnsPerHost = 2
	})
	for _, opts := range [][]grpc.DialOption{
		nil,
		{grpc.WithPerRPCCredentials(TokenCredentials([]byte("wrong-token-wrong-token")))},
		{grpc.WithPerRPCCredentials(rawAuth(testToken))},
	} {
		dialRaw(t, f.addr, opts...).Status(ctx10s(t), &peerpb.StatusRequest{})
	}
	// No deadline.
	dialRaw(t, f.addr, grpc.WithPerRPCCredentials(TokenCredentials([]byte(testToken)))).Status(
		metadata.AppendToOutgoingContext(context.Background()), &peerpb.StatusRequest{})

	// Data plane: a wrong token, a token string longer than allowed, a
	// request cut short, and a third connection over the per-host limit of 2.
	dataHello := func(tok string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		b := append([]byte(dataMagic), 0, 0)
		binary.BigEndian.PutUint16(b[len(dataMagic):], uint16(len(tok)))
		c.Write(append(b, tok...))
		return c, bufio.NewReader(c)
	}
	c, r := dataHello("wrong-token-wrong-token")
	if err := readReplyStatus(r); status.Code(err) != codes.Unauthenticated {
		t.Errorf("data plane, wrong token: %v", err)
	}
	c.Close()
	c, _ = net.Dial("tcp", f.addr)
	c.Write([]byte(dataMagic + "\xff\xff"))
	io.Copy(io.Discard, c) // the server closes it
	c.Close()
	// The server gives a refused connection's slot back after its answer
	// is written: wait until both are given back, so the next two
	// connections are exactly at the per-host limit.
	ctx := ctx10s(t)
	waitOpen(ctx, t, f.srv.dataConns, 0)
	c1, r1 := dataHello(testToken)
	if err := readReplyStatus(r1); err != nil {
		t.Fatal(err)
	}
	c1.Write([]byte{0, 6, 'm', 'o'}) // then nothing: cut short by closing
	c2, r2 := dataHello(testToken)
	if err := readReplyStatus(r2); err != nil {
		t.Fatal(err)
	}
	_, r3 := dataHello(testToken)
	if err := readReplyStatus(r3); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third data connection: %v, want ResourceExhausted", err)
	}
	c1.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, r1)
	c2.Close()

	want := map[string]float64{reasonNoToken: 1, reasonBadToken: 2, reasonNoBearer: 1, reasonNoDeadline: 1, reasonBadFrame: 2, reasonTooManyConns: 1}
	// The refusals of the data plane are counted by the server's
	// goroutines: wait for each count.
	for {
		changed := f.srv.refused.r.Changed()
		counts := refusedCounts(t, reg)
		var got []string
		for _, reason := range refusalReasons {
			if n, ok := counts[reason]; !ok || n != want[reason] {
				got = append(got, fmt.Sprintf("%s=%v (want %v)", reason, n, want[reason]))
			}
		}
		if len(got) == 0 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("ringcache_peer_refused_total: %s", strings.Join(got, ", "))
		}
	}
	for _, reason := range []string{reasonNoToken, reasonBadToken, reasonNoBearer, reasonBadFrame, reasonTooManyConns} {
		if !strings.Contains(logs.String(), "reason="+reason+" peer=127.0.0.1:") {
			t.Errorf("no log line for %s with the peer address in:\n%s", reason, logs.String())
		}
	}
	if strings.Contains(logs.String(), testToken) {
		t.Error("the cluster token was logged")
	}
}

// TestRefusalLogRateLimited: one line per reason and peer host per
// interval, the next one saying how many were suppressed (the table bound
// and its pruning are pkg/admit's tests).
func TestRefusalLogRateLimited(t *testing.T) {
	var logs syncBuffer
	clk := clocktest.New(time.Unix(1000, 0))
	r, err := newRefusals(slog.New(slog.NewTextHandler(&logs, nil)), clk, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	b := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 2}
	for i := range 5 {
		r.refuse(reasonBadToken, &net.TCPAddr{IP: a.IP, Port: 100 + i}, "")
	}
	r.refuse(reasonNoToken, a, "")
	r.refuse(reasonBadToken, b, "")
	if n := strings.Count(logs.String(), "\n"); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, logs.String())
	}
	clk.Advance(time.Minute)
	r.refuse(reasonBadToken, a, "")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], `level=WARN msg="peer refused" reason=bad_token peer=10.0.0.1:1 detail="" suppressed=4`) {
		t.Fatalf("after the interval: %q", lines)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// refusedCounts returns ringcache_peer_refused_total on reg, by reason.
func refusedCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ringcache_peer_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// open returns how many connections hold a slot.
func (l *connLimit) open() int { return l.s.Held() }

// waitOpen waits until n connections hold a slot of l, for tests that
// wait for the server to take or give back slots.
func waitOpen(ctx context.Context, t *testing.T, l *connLimit, n int) {
	t.Helper()
	for {
		changed := l.s.Changed()
		if l.open() == n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%d connections hold a slot, want %d", l.open(), n)
		}
	}
}
