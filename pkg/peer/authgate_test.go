package peer

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// TestAuthGateExpiresOnItsClock: the gate admits perHost pending
// connections of a host, closes those still pending when its clock passes
// the timeout, and leaves an authenticated one alone.
func TestAuthGateExpiresOnItsClock(t *testing.T) {
	fc := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := newAuthGate(fc, 10*time.Second, 2)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pair := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return c, s
	}
	c1, s1 := pair()
	c2, s2 := pair()
	_, s3 := pair()
	g1, ok1 := g.admit(s1)
	_, ok2 := g.admit(s2)
	if _, ok3 := g.admit(s3); !ok1 || !ok2 || ok3 {
		t.Fatalf("admitted %v, %v, %v; want the first two of a host with 2 pending allowed", ok1, ok2, ok3)
	}
	g.authenticated(g1.RemoteAddr())
	if err := fc.BlockUntil(ctx10s(t), 1); err != nil { // the second's timer
		t.Fatal(err)
	}
	fc.Advance(10 * time.Second)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("pending connection after the timeout: read %v, want EOF (closed)", err)
	}
	if _, err := g1.Write([]byte("x")); err != nil {
		t.Errorf("authenticated connection after the timeout: %v", err)
	}
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err != nil {
		t.Errorf("authenticated connection: read %v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) != 0 || len(g.byHost) != 0 {
		t.Errorf("gate still tracks %d pending connections (%v by host)", len(g.pending), g.byHost)
	}
}
