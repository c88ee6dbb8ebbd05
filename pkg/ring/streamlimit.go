package ring

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
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
// wait), and memberlist reads at most maxStreamBytes of each. memberlist sets TCPTimeout as the deadline
// of each stream it handles and closes it when done; closing releases the
// slot, so no stream holds one longer than that.
type limitedTransport struct {
	*memberlist.NetTransport
	streams chan net.Conn
	refuse  func(reason Refusal, detail string)
	done    chan struct{}
	pumped  chan struct{} // closed when pump returns
	stop    sync.Once
	wait    time.Duration

	mu       sync.Mutex
	inUse    int
	waiting  int
	bySource map[string]int
	freed    chan struct{} // closed and replaced when a slot is released
}

// newLimitedTransport wraps nt; refuse is called for every stream closed
// unread.
func newLimitedTransport(nt *memberlist.NetTransport, refuse func(Refusal, string)) *limitedTransport {
	t := &limitedTransport{
		NetTransport: nt,
		streams:      make(chan net.Conn),
		refuse:       refuse,
		done:         make(chan struct{}),
		pumped:       make(chan struct{}),
		wait:         maxStreamWait,
		bySource:     make(map[string]int),
		freed:        make(chan struct{}),
	}
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
		err = t.NetTransport.Shutdown()
		close(t.done)
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
		case c = <-t.NetTransport.StreamCh():
		case <-t.done:
			return
		}
		src := sourceIP(c.RemoteAddr())
		switch t.tryAcquire(src, true) {
		case acquired:
			t.handOff(c, src)
		case waitFull:
			t.reject(c, fmt.Sprintf("%d streams open and %d waiting", maxStreams, maxStreamsWaiting))
		case mustWait:
			waiters.Add(1)
			go func() {
				defer waiters.Done()
				if why, ok := t.acquire(src); ok {
					t.handOff(c, src)
				} else {
					t.reject(c, why)
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

// handOff gives memberlist a stream holding a slot for src.
func (t *limitedTransport) handOff(c net.Conn, src string) {
	lc := &limitedConn{Conn: c, left: maxStreamBytes}
	lc.release = func() { t.release(src) }
	select {
	case t.streams <- lc:
	case <-t.done:
		_ = lc.Close()
	}
}

type acquireResult int

const (
	acquired acquireResult = iota
	mustWait               // no slot now; the caller may wait
	waitFull               // no slot and maxStreamsWaiting already wait
)

// tryAcquire takes a slot for a stream from src if one is free. With
// enqueue, a stream that must wait is counted as waiting (acquire then
// uncounts it).
func (t *limitedTransport) tryAcquire(src string, enqueue bool) acquireResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bySource[src] < maxStreamsPerSource && t.inUse < maxStreams {
		t.inUse++
		t.bySource[src]++
		return acquired
	}
	if !enqueue {
		return mustWait
	}
	if t.waiting >= maxStreamsWaiting {
		return waitFull
	}
	t.waiting++
	return mustWait
}

// acquire waits at most t.wait for a slot for a stream from src that
// tryAcquire counted as waiting. It returns why it got none.
func (t *limitedTransport) acquire(src string) (string, bool) {
	defer func() {
		t.mu.Lock()
		t.waiting--
		t.mu.Unlock()
	}()
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	for {
		t.mu.Lock()
		freed := t.freed
		t.mu.Unlock()
		if t.tryAcquire(src, false) == acquired {
			return "", true
		}
		select {
		case <-freed:
		case <-timer.C:
			return fmt.Sprintf("no free stream slot within %v (%d open, at most %d from one source)", t.wait, maxStreams, maxStreamsPerSource), false
		case <-t.done:
			return "shutting down", false
		}
	}
}

func (t *limitedTransport) release(src string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inUse--
	if t.bySource[src]--; t.bySource[src] <= 0 {
		delete(t.bySource, src)
	}
	close(t.freed)
	t.freed = make(chan struct{})
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
// c.BindPort, and sets c.Transport. With BindPort 0 it picks a port, as
// memberlist does for its own transport, retrying a few times since the
// TCP and UDP listeners must get the same port.
func listenGossip(c *memberlist.Config, refuse func(Refusal, string)) (*limitedTransport, error) {
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
			t := newLimitedTransport(nt, refuse)
			c.Transport = t
			return t, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, errors.Join(errors.New("listen for gossip"), err)
}
