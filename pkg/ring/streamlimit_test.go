package ring

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// floodStreams opens n TCP streams to addr, each sending memberlist's
// "encrypted message" header (message type 10, then a big-endian uint32
// length) announcing announced bytes, then garbage bytes of garbage, and
// returns the connections, still open, once every write has finished or
// failed.
func floodStreams(t *testing.T, addr string, n, announced, garbage int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		hdr := [5]byte{10}
		binary.BigEndian.PutUint32(hdr[1:], uint32(announced))
		if _, err := c.Write(hdr[:]); err != nil {
			t.Fatalf("write header: %v", err)
		}
		conns = append(conns, c)
	}
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i*7 + 3)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			for sent := 0; sent < garbage; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return // refused: the node closed the stream
				}
			}
		}()
	}
	wg.Wait()
	return conns
}

// heapPeak samples HeapInuse until stop is closed and returns the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var ms runtime.MemStats
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestMembershipStreamFlood: unauthenticated TCP streams to the gossip port
// announcing 20 MiB of encrypted state and sending 19 MiB of garbage must
// not grow the node's memory with their number. 20 such streams from one
// address: the node hands memberlist at most maxStreamsPerSource of them
// at a time, the others wait (at most maxStreamsWaiting) or are closed,
// memberlist reads at most maxStreamBytes of each, every one is refused
// and counted, and a member with the key still joins afterwards.
//
// The memory bound is on the peak of the Go heap in use (HeapInuse, sampled
// every 5 ms in this process, which runs the node), not on RSS: stream
// buffers are heap allocations, and the test process also holds the
// attacker's goroutines and the test binary.
func TestMembershipStreamFlood(t *testing.T) {
	const (
		streams   = 20
		announced = 20 << 20
		garbage   = 19 << 20
	)
	// The LAN profile: a 10 s stream timeout, so streams the node accepted
	// are still held while the later ones arrive.
	lan := func(o *Options) { o.Profile = ProfileLAN }
	a := startNode(t, "node-a", withKey(testKey), lan)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	stop := make(chan struct{})
	peakc := heapPeak(stop)
	conns := floodStreams(t, a.GossipAddr(), streams, announced, garbage)
	// Memory a stream holds is held until the node gives it up; sample
	// until every accepted stream was refused, or for the stream timeout.
	var refused atomic.Uint64
	total := func() uint64 {
		return a.Refused(Refusal("too_many_streams")) + a.Refused(Refusal("oversized")) +
			a.Refused(RefusedMalformed) + a.Refused(RefusedKey)
	}
	deadline := time.NewTimer(12 * time.Second)
	defer deadline.Stop()
wait:
	for {
		changed := a.refusals.changed()
		if total() >= streams {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			break wait
		}
	}
	refused.Store(total())
	close(stop)
	peak := <-peakc
	for _, c := range conns {
		_ = c.Close()
	}

	growth := int64(peak) - int64(base)
	// Bound: every stream slot full with a buffer that doubled past
	// maxStreamBytes, plus 64 MiB for everything else.
	const bound = maxStreams*2*maxStreamBytes + 64<<20
	t.Logf("HeapInuse base %d MiB, peak %d MiB, growth %d MiB (bound %d MiB); refused: too_many_streams %d, oversized %d, malformed %d",
		base>>20, peak>>20, growth>>20, bound>>20,
		a.Refused(Refusal("too_many_streams")), a.Refused(Refusal("oversized")), a.Refused(RefusedMalformed))
	if growth > bound {
		t.Errorf("heap in use grew by %d MiB under %d streams of %d MiB garbage, bound %d MiB", growth>>20, streams, garbage>>20, bound>>20)
	}
	if n := refused.Load(); n < streams {
		t.Errorf("%d of %d flooding streams refused and counted within 12 s", n, streams)
	}

	b := startNode(t, "node-b", withKey(testKey), withSeeds(a.GossipAddr()))
	for _, m := range []*Membership{a, b} {
		waitView(t, m, 20*time.Second, "node-b joined after the flood", hasIDs("node-a", "node-b"))
	}
}

// TestMembershipStreamSlots: streams from several sources share
// maxStreams slots; a stream arriving while all are held waits at most
// maxStreamWait and is refused; once the holders close, a member joins.
func TestMembershipStreamSlots(t *testing.T) {
	a := startNode(t, "node-a", withKey(testKey), func(o *Options) { o.Profile = ProfileLAN })
	var held []net.Conn
	// maxStreamsPerSource streams from each of three loopback addresses:
	// 12 streams for 8 slots. Each sends only the header and holds.
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		for range maxStreamsPerSource {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", a.GossipAddr())
			if err != nil {
				t.Fatalf("dial from %s: %v", src, err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if _, err := c.Write([]byte{10, 0, 0, 1, 0}); err != nil {
				t.Fatalf("write header: %v", err)
			}
			held = append(held, c)
		}
	}
	want := uint64(len(held) - maxStreams)
	waitRefused(t, a, RefusedStreams, want, 10*time.Second)
	if got := a.Refused(RefusedStreams); got != want {
		t.Errorf("refused %d streams, want %d (12 streams, %d slots)", got, want, maxStreams)
	}
	for _, c := range held {
		_ = c.Close()
	}
	b := startNode(t, "node-b", withKey(testKey), withSeeds(a.GossipAddr()))
	for _, m := range []*Membership{a, b} {
		waitView(t, m, 20*time.Second, "node-b joined after the streams closed", hasIDs("node-a", "node-b"))
	}
}

// fromConn is one end of a net.Pipe that says it comes from addr.
type fromConn struct {
	net.Conn
	addr net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.addr }

// TestStreamLimitsWithFakeClock drives the limited transport without a
// network: maxStreamsPerSource slots per source, maxStreams in all, a
// release hands the slot to a waiter that may take it, a waiter is refused
// once maxStreamWait has passed on the clock, at most maxStreamsWaiting
// wait, and Shutdown refuses those still waiting.
func TestStreamLimitsWithFakeClock(t *testing.T) {
	clk := clocktest.New(time.Unix(1000, 0))
	in := make(chan net.Conn)
	refused := make(chan string, 64)
	lt := startLimited(in, clk, func(r Refusal, detail string) {
		if r != RefusedStreams {
			t.Errorf("refused for %s", r)
		}
		refused <- detail
	})
	t.Cleanup(func() { _ = lt.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port := 0
	send := func(ip string) {
		t.Helper()
		a, b := net.Pipe()
		t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
		port++
		select {
		case in <- fromConn{a, &net.TCPAddr{IP: net.ParseIP(ip), Port: port}}:
		case <-ctx.Done():
			t.Fatal("the pump took no stream")
		}
	}
	accept := func() net.Conn {
		t.Helper()
		select {
		case c := <-lt.StreamCh():
			return c
		case <-ctx.Done():
			t.Fatal("no stream handed to memberlist")
			return nil
		}
	}
	nextRefusal := func() string {
		t.Helper()
		select {
		case d := <-refused:
			return d
		case <-ctx.Done():
			t.Fatal("no refusal")
			return ""
		}
	}
	noRefusal := func() {
		t.Helper()
		select {
		case d := <-refused:
			t.Fatalf("refused: %s", d)
		default:
		}
	}

	var held []net.Conn
	for range maxStreamsPerSource {
		send("10.0.0.1")
		held = append(held, accept())
	}
	send("10.0.0.1") // over its source's limit: waits
	for range maxStreams - maxStreamsPerSource {
		send("10.0.0.2")
		held = append(held, accept())
	}
	send("10.0.0.3") // every slot held: waits
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatal("the two waiters armed no timers:", err)
	}
	if got := lt.slots.Held(); got != maxStreams {
		t.Fatalf("%d slots held, want %d", got, maxStreams)
	}
	// A stream of 10.0.0.2 ends: the waiter of 10.0.0.3 takes its slot,
	// the one of 10.0.0.1 (at its source's limit) cannot.
	_ = held[len(held)-1].Close()
	held = held[:len(held)-1]
	if c := accept(); c.RemoteAddr().String() != "10.0.0.3:10" {
		t.Fatalf("handed %s after the release, want the waiter from 10.0.0.3", c.RemoteAddr())
	}
	clk.Advance(maxStreamWait - time.Nanosecond)
	noRefusal()
	clk.Advance(time.Nanosecond)
	want := fmt.Sprintf("no free stream slot within 1s (%d open, at most %d from one source) from=10.0.0.1:5", maxStreams, maxStreamsPerSource)
	if got := nextRefusal(); got != want {
		t.Fatalf("after the wait: %q, want %q", got, want)
	}

	// The line: maxStreamsWaiting wait, the next is closed at once.
	for range maxStreamsWaiting {
		send("10.0.0.4")
	}
	if err := clk.BlockUntil(ctx, maxStreamsWaiting); err != nil {
		t.Fatal(err)
	}
	noRefusal()
	send("10.0.0.4")
	if got := nextRefusal(); !strings.HasPrefix(got, fmt.Sprintf("%d streams open and %d waiting from=10.0.0.4:", maxStreams, maxStreamsWaiting)) {
		t.Fatalf("over the line: %q", got)
	}
	if err := lt.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for range maxStreamsWaiting {
		if got := nextRefusal(); !strings.HasPrefix(got, "shutting down from=10.0.0.4:") {
			t.Fatalf("at shutdown: %q", got)
		}
	}
	if got := lt.slots.Waiting(); got != 0 {
		t.Fatalf("%d still waiting after Shutdown", got)
	}
}
