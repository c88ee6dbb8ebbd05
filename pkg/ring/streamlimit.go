package ring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringcache/ringcache/pkg/admit"
	"github.com/ringcache/ringcache/pkg/clock"
)

// Limits on the TCP streams the gossip port hands to memberlist. memberlist
// v0.7.0 reads up to 20 MiB of a stream announcing encrypted state into a
// growing buffer before it tries to decrypt it, and it handles every
// accepted stream at once, so unauthenticated connections could grow a
// node's memory without limit. limitedTransport bounds both.
const (
	// maxStreams bounds the streams memberlist handles at once. A node's
	// own streams are short push/pulls and rare (one per PushPullInterval
	// per peer, and joins).
	maxStreams = 8
	// maxStreamsPerSource bounds the streams from one IP address at once,
	// so one host cannot take every slot.
	maxStreamsPerSource = maxStreams / 2
	// maxStreamBytes bounds what memberlist may read of one stream. Our
	// push/pull state is a few hundred bytes per member (metadata is at
	// most memberlist.MetaMaxSize), so 4 MiB is thousands of members.
	maxStreamBytes = 4 << 20
	// maxStreamWait bounds how long a stream waits for a slot (all busy,
	// or its source at its limit); then it is closed. A legitimate peer
	// retries at its next push/pull or join.
	maxStreamWait = time.Second
	// maxStreamsWaiting bounds the streams waiting for a slot: one more is
	// closed at once. Waiting streams wait side by side, so none holds up
	// a stream that finds a slot free.
	maxStreamsWaiting = 2 * maxStreams
)

// errStreamTooLarge is what a limited stream's Read returns past
// maxStreamBytes; memberlist logs it as "failed to receive: ...".
var errStreamTooLarge = fmt.Errorf("ringcache: gossip stream larger than %d bytes", maxStreamBytes)

// limitedTransport is a memberlist.NetTransport whose incoming streams are
// limited: at most maxStreams at once (maxStreamsPerSource from one IP), a
// stream waits at most maxStreamWait for a slot (at most maxStreamsWaiting
// wait), and memberlist reads at most maxStreamBytes of each. The slots
// are an admit.Slots. memberlist sets TCPTimeout as the deadline of each
// stream it handles and closes it when done; closing releases the slot, so
// no stream holds one longer than that.
type limitedTransport struct {
	*memberlist.NetTransport
	in      <-chan net.Conn // the NetTransport's accepted streams
	streams chan net.Conn
	refuse  func(reason Refusal, detail string)
	slots   *admit.Slots
	ctx     context.Context // canceled by Shutdown
	cancel  context.CancelFunc
	pumped  chan struct{} // closed when pump returns
	stop    sync.Once
}

// newLimitedTransport wraps nt; refuse is called for every stream closed
// unread, clk times the wait for a slot.
func newLimitedTransport(nt *memberlist.NetTransport, clk clock.Clock, refuse func(Refusal, string)) *limitedTransport {
	t := startLimited(nt.StreamCh(), clk, refuse)
	t.NetTransport = nt
	return t
}

// startLimited starts limiting the streams from in (tests feed it without
// a NetTransport).
func startLimited(in <-chan net.Conn, clk clock.Clock, refuse func(Refusal, string)) *limitedTransport {
	slots, err := admit.NewSlots(admit.SlotsOptions{
		Max: maxStreams, PerHost: maxStreamsPerSource, MaxWaiting: maxStreamsWaiting,
		Wait: maxStreamWait, Clock: clk,
	})
	if err != nil {
		panic(err) // constant options
	}
	t := &limitedTransport{
		in:      in,
		streams: make(chan net.Conn),
		refuse:  refuse,
		slots:   slots,
		pumped:  make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.pump()
	return t
}

// StreamCh implements memberlist.Transport: the limited streams.
func (t *limitedTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport.
func (t *limitedTransport) Shutdown() error {
	var err error
	t.stop.Do(func() {
		// The listeners first, while pump still takes what they accepted
		// (a listener blocked handing over a stream would never return).
		if t.NetTransport != nil {
			err = t.NetTransport.Shutdown()
		}
		t.cancel()
		<-t.pumped
	})
	return err
}

// pump takes each stream the NetTransport accepted and hands it to
// memberlist if it gets a slot at once; otherwise it waits for one beside
// the pump, up to maxStreamsWaiting of them; beyond that it is closed.
func (t *limitedTransport) pump() {
	defer close(t.pumped)
	var waiters sync.WaitGroup
	defer waiters.Wait()
	for {
		var c net.Conn
		select {
		case c = <-t.in:
		case <-t.ctx.Done():
			return
		}
		claim, err := t.slots.Join(sourceIP(c.RemoteAddr()))
		switch {
		case err != nil:
			t.reject(c, fmt.Sprintf("%d streams open and %d waiting", maxStreams, maxStreamsWaiting))
		case claim.Held():
			t.handOff(c, claim)
		default:
			waiters.Add(1)
			go func() {
				defer waiters.Done()
				switch err := claim.Wait(t.ctx); {
				case err == nil:
					t.handOff(c, claim)
				case errors.Is(err, admit.ErrTimeout):
					t.reject(c, fmt.Sprintf("no free stream slot within %v (%d open, at most %d from one source)", maxStreamWait, maxStreams, maxStreamsPerSource))
				default:
					t.reject(c, "shutting down")
				}
			}()
		}
	}
}

func (t *limitedTransport) reject(c net.Conn, why string) {
	addr := c.RemoteAddr()
	_ = c.Close()
	t.refuse(RefusedStreams, fmt.Sprintf("%s from=%s", why, addr))
}

// handOff gives memberlist a stream holding the slot of claim.
func (t *limitedTransport) handOff(c net.Conn, claim *admit.Claim) {
	lc := &limitedConn{Conn: c, left: maxStreamBytes, release: claim.Release}
	select {
	case t.streams <- lc:
	case <-t.ctx.Done():
		_ = lc.Close()
	}
}

// sourceIP is the IP of a stream's remote address, or the whole address if
// it has no port.
func sourceIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// limitedConn is a stream holding a slot: Close releases it (once), and
// Read returns errStreamTooLarge past its byte budget.
type limitedConn struct {
	net.Conn
	left    int64
	release func()
	once    sync.Once
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errStreamTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// listenGossip creates the limited transport for c, binding c.BindAddr and
// c.BindPort, and sets c.Transport; clk times the wait for a stream slot. With BindPort 0 it picks a port, as
// memberlist does for its own transport, retrying a few times since the
// TCP and UDP listeners must get the same port.
func listenGossip(c *memberlist.Config, clk clock.Clock, refuse func(Refusal, string)) (*limitedTransport, error) {
	tries := 1
	if c.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr},
			BindPort:  c.BindPort,
			Logger:    c.Logger,
		})
		if err == nil {
			if c.BindPort == 0 {
				c.BindPort = nt.GetAutoBindPort()
				c.AdvertisePort = c.BindPort
			}
			t := newLimitedTransport(nt, clk, refuse)
			c.Transport = t
			return t, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, errors.Join(errors.New("listen for gossip"), err)
}
