package peer

import (
	"net"
	"sync"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// authGate bounds connections that have not yet authenticated a call:
// at most perHost of them per remote host, and each is closed unless a
// call on it (a gRPC call past the tap, or a data-plane hello) carries the
// cluster token within timeout. Without it a peer that sends an HTTP/2
// preface, or 4 bytes of one, holds a connection slot for as long as it
// likes.
type authGate struct {
	clock   clock.Clock
	timeout time.Duration
	perHost int

	mu      sync.Mutex
	pending map[string]*gatedConn // by remote address; authenticated ones leave
	byHost  map[string]int        // pending connections per remote host
}

func newAuthGate(c clock.Clock, timeout time.Duration, perHost int) *authGate {
	return &authGate{clock: c, timeout: timeout, perHost: perHost, pending: map[string]*gatedConn{}, byHost: map[string]int{}}
}

// gatedConn is a connection the gate watches until it authenticates.
type gatedConn struct {
	net.Conn
	gate       *authGate
	addr, host string
	timer      clock.Timer
	done       bool // authenticated or closed; gate.mu
}

// admit wraps c, or returns false when its host already has perHost
// pending connections.
func (g *authGate) admit(c net.Conn) (net.Conn, bool) {
	gc := &gatedConn{Conn: c, gate: g, addr: c.RemoteAddr().String(), host: remoteHost(c.RemoteAddr())}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byHost[gc.host] >= g.perHost {
		return nil, false
	}
	if _, dup := g.pending[gc.addr]; dup {
		// Cannot happen for TCP (the address is the peer's ip:port); if
		// it does, do not let the entry of the other conn be replaced.
		return nil, false
	}
	g.byHost[gc.host]++
	g.pending[gc.addr] = gc
	gc.timer = g.clock.AfterFunc(g.timeout, gc.expire)
	return gc, true
}

// authenticated records that the connection from addr carried a call with
// the cluster token. It is a map lookup: it runs for every call.
func (g *authGate) authenticated(addr net.Addr) {
	if addr == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if gc := g.pending[addr.String()]; gc != nil {
		g.leave(gc)
	}
}

// leave takes gc off the pending set. g.mu is held.
func (g *authGate) leave(gc *gatedConn) {
	if gc.done {
		return
	}
	gc.done = true
	gc.timer.Stop()
	if g.pending[gc.addr] == gc {
		delete(g.pending, gc.addr)
	}
	if g.byHost[gc.host]--; g.byHost[gc.host] <= 0 {
		delete(g.byHost, gc.host)
	}
}

func (gc *gatedConn) expire() {
	gc.gate.mu.Lock()
	expired := !gc.done
	gc.gate.mu.Unlock()
	if expired {
		gc.Close()
	}
}

func (gc *gatedConn) Close() error {
	gc.gate.mu.Lock()
	gc.gate.leave(gc)
	gc.gate.mu.Unlock()
	return gc.Conn.Close()
}
