package peer

import (
	"net"
	"sync"
	"testing"
	"time"
)

// h2Preface is what a gRPC client sends first: the HTTP/2 connection
// preface and an empty SETTINGS frame.
var h2Preface = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127/8 to lo), so one test can play several remote hosts.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// heldOpen reports whether the server kept c open: it answered (HTTP/2
// SETTINGS) or stayed silent for wait, instead of closing it.
func heldOpen(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := c.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	return err == nil
}

// waitClosed waits until the server closes c and returns how long it took.
func waitClosed(t *testing.T, c net.Conn, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(bound))
	b := make([]byte, 4096)
	for {
		if _, err := c.Read(b); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection from %v still open after %v", c.LocalAddr(), bound)
			}
			return time.Since(start)
		}
	}
}

// TestPreAuthConnsBounded: connections that never authenticate a call
// (a bare HTTP/2 preface, 4 bytes of it, or calls without the token) are
// bounded per host and closed after AuthTimeout, and while attackers on
// four hosts try to hold every connection slot a new client still reads
// on both transports.
func TestPreAuthConnsBounded(t *testing.T) {
	k := key(1, 1000)
	f := newFixture(t, map[string][]byte{k: randBytes(1000)}, func(o *ServerOptions) {
		o.Limits.MaxConns = 64
		o.Limits.MaxConnsPerHost = 32
		o.Limits.MaxPendingConnsPerHost = 8
		o.Limits.AuthTimeout = time.Second
	})
	var attackers []net.Conn
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for i := range 32 {
			c := dialFrom(t, src, f.addr)
			if i == 0 {
				c.Write(h2Preface[:4])
			} else {
				c.Write(h2Preface)
			}
			attackers = append(attackers, c)
		}
	}
	var (
		mu   sync.Mutex
		held int
		wg   sync.WaitGroup
	)
	for _, c := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if heldOpen(c, 300*time.Millisecond) {
				mu.Lock()
				held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d of %d attacker connections held", held, len(attackers))
	if held > 4*8 {
		t.Errorf("%d unauthenticated connections held, want at most %d (4 hosts x 8)", held, 4*8)
	}
	for _, grpcReads := range []bool{false, true} {
		cl, err := Dial(f.addr, ClientOptions{Token: []byte(testToken), GRPCReads: grpcReads})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cl.Read(ctx10s(t), "models", k, 0, -1); err != nil {
			t.Errorf("read (grpc %v) during the flood: %v", grpcReads, err)
		}
		cl.Close()
	}
	var slowest time.Duration
	for _, c := range attackers {
		slowest = max(slowest, waitClosed(t, c, 5*time.Second))
	}
	t.Logf("every attacker connection closed, the last after %v more", slowest)
}
