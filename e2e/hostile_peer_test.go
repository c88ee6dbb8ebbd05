package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// TestHostilePeer attacks one real cache node the way a mount holding the
// cluster token, or anyone reaching the peer port without it, could: reads
// whose range overflows int64 on both transports, a flood of large
// unauthenticated gRPC calls, a flood of data-plane clients that pipeline
// reads and never read the answers, and a token without its "Bearer "
// scheme. The node must stay up, answer each with a clear status, keep its
// peak RSS within a stated bound, count the refusals on /metrics, and
// serve valid reads (checked by sha256) afterwards.
func TestHostilePeer(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, map[string][]byte{"/m/model.safetensors": randomBytes(t, 16<<20)})
	blocks := e.blocks(t)
	keys := sortedKeys(blocks)
	if len(keys) < 4 {
		t.Fatalf("%d blocks, want 4", len(keys))
	}
	n := e.startNode(t, "node-1", nil)
	n.waitMembers(t, 1, 30*time.Second)
	dataClient := n.client(t)
	grpcClient, err := peer.Dial(n.peerAddr, peer.ClientOptions{Token: []byte(testToken), GRPCReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer grpcClient.Close()
	vol := e.format.UUID

	// validReads reads every block whole through both transports and
	// checks its sha256 against the origin's bytes.
	validReads := func(t *testing.T) {
		t.Helper()
		for _, c := range []*peer.Client{dataClient, grpcClient} {
			for _, k := range keys {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				got, _, err := c.Read(ctx, vol, k, 0, -1)
				cancel()
				if err != nil || sha256.Sum256(got) != sha256.Sum256(blocks[k]) {
					t.Fatalf("read %s: %d bytes, err %v; want the origin's %d bytes", k, len(got), err, len(blocks[k]))
				}
			}
		}
	}
	alive := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := dataClient.Status(ctx); err != nil {
			t.Fatalf("node down: %v\n%s", err, n.LogTail(3000))
		}
	}

	t.Run("overflowing and bad ranges on both transports", func(t *testing.T) {
		// Each transport starts on a block nobody read yet: its first read,
		// whose end overflows int64, is a miss, the others hit.
		for i, tr := range []struct {
			name string
			c    *peer.Client
		}{{"data plane", dataClient}, {"grpc", grpcClient}} {
			k := keys[i]
			size := int64(len(blocks[k]))
			for _, r := range []struct {
				off, limit int64
				code       codes.Code
				want       []byte
			}{
				{1, math.MaxInt64, codes.OK, blocks[k][1:]},
				{math.MaxInt64, math.MaxInt64, codes.OutOfRange, nil},
				{size, 10, codes.OK, []byte{}},
				{size + 1, 1, codes.OutOfRange, nil},
				{-1, 1, codes.InvalidArgument, nil},
				{0, math.MinInt64, codes.InvalidArgument, nil},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				got, _, err := tr.c.Read(ctx, vol, k, r.off, r.limit)
				cancel()
				if status.Code(err) != r.code || (r.code == codes.OK && sha256.Sum256(got) != sha256.Sum256(r.want)) {
					t.Errorf("%s, range (%d, %d): %d bytes, %v; want %v and %d bytes", tr.name, r.off, r.limit, len(got), err, r.code, len(r.want))
				}
				alive(t)
			}
		}
		// A raw data-plane request with a deadline of MaxInt64 and an
		// overflowing range on a block nobody read yet is answered too.
		dc := dialData(t, n.peerAddr, testToken)
		if err := readStatus(dc.r); err != nil {
			t.Fatalf("data-plane hello: %v", err)
		}
		dc.request(t, vol, keys[2], 1, math.MaxInt64, math.MaxInt64)
		if err := readStatus(dc.r); err != nil {
			t.Fatalf("raw overflowing request: %v", err)
		}
		dc.Close()
		alive(t)
		validReads(t)
	})

	t.Run("a token without Bearer is refused", func(t *testing.T) {
		for name, auth := range map[string]string{"bare token": testToken, "lowercase scheme": "bearer " + testToken} {
			conn, err := grpc.NewClient(n.peerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(rawAuth(auth)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = peerpb.NewPeerClient(conn).Status(ctx, &peerpb.StatusRequest{})
			cancel()
			conn.Close()
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s: %v, want Unauthenticated", name, err)
			}
		}
	})

	// Flood shape: 20 gRPC connections, each with 20 concurrent Has calls
	// of 40,000 keys (about 3.9 MB each, 1.56 GB in all) and no token.
	t.Run("unauthenticated flood of large calls", func(t *testing.T) {
		const conns, calls, bound = 20, 20, 300 << 20
		req := &peerpb.HasRequest{Volume: "models", Keys: make([]string, 40000)}
		for i := range req.Keys {
			req.Keys[i] = fmt.Sprintf("chunks/0/%d/%d_0_4194304%s", i/1000, i+1, strings.Repeat("x", 68))
		}
		f := hasFlood(t, n, hasFloodShape{conns: conns, calls: calls, rounds: 1, timeout: 120 * time.Second},
			func(int) *peerpb.HasRequest { return req })
		t.Logf("peak RSS %d MB over a baseline of %d MB under %d x %d unauthenticated Has calls of %d bytes; answers %v",
			f.growth()>>20, f.base>>20, conns, calls, protoSize(req), f.codes)
		if f.codes[codes.Unauthenticated] != conns*calls {
			t.Errorf("answers %v, want %d Unauthenticated", f.codes, conns*calls)
		}
		f.checkRSS(t, bound)
		alive(t)
		validReads(t)
	})

	// Flood shape: 200 authenticated data-plane connections, each
	// pipelining 8 reads of a whole cached 4 MiB block with a deadline of
	// MaxInt64 and never reading an answer, held for 15 s.
	t.Run("data-plane clients that never read their answers", func(t *testing.T) {
		const clients, pipelined, bound = 200, 8, 300 << 20
		// The node lets one host hold a quarter of its answer budget
		// (128 MiB by default): more than 4 answers of 4 MiB blocks.
		const loaded = 4
		hold := 15 * time.Second
		reads0 := n.metric(t, "ringcache_reads_total", "")
		f := flood{base: resetPeakRSS(t, n.Pid())}
		start := time.Now()
		var conns []*rawData
		refused := 0
		for range clients {
			dc := dialData(t, n.peerAddr, testToken)
			if err := readStatus(dc.r); err != nil {
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("hello: %v", err)
				}
				refused++
				dc.Close()
				continue
			}
			for i := range pipelined {
				dc.request(t, vol, keys[i%len(keys)], 0, -1, math.MaxInt64)
			}
			conns = append(conns, dc)
		}
		if len(conns) == 0 {
			t.Fatalf("all %d clients were refused: the flood tested nothing", clients)
		}
		// The event that shows the node took the flood up: it has loaded
		// answers nobody reads (a read is counted once its data is in
		// memory, before it is sent).
		took := pollUntil(t, "the node loads the flood's answers", 60*time.Second, func() error {
			if got := n.metric(t, "ringcache_reads_total", "") - reads0; got < loaded {
				return fmt.Errorf("%v answers loaded, want at least %d", got, loaded)
			}
			return nil
		})
		// The flood then lasts out hold, half the node's 30 s write
		// timeout, so none of the unread answers is dropped meanwhile: a
		// fixed attack length, not a wait for an event. VmHWM keeps the
		// peak of the whole window.
		time.Sleep(time.Until(start.Add(hold)))
		f.peak = peakRSS(t, n.Pid())
		t.Logf("peak RSS %d MB over a baseline of %d MB with %d clients (%d refused) x %d pipelined 4 MiB reads unread for %v (%d answers loaded after %v, %v in all)",
			f.growth()>>20, f.base>>20, clients, refused, pipelined, hold, loaded, took.Round(time.Millisecond), n.metric(t, "ringcache_reads_total", "")-reads0)
		f.checkRSS(t, bound)
		for _, dc := range conns {
			dc.Close()
		}
		alive(t)
		validReads(t)
	})

	// Flood shape: 9 remote IPs x 100 raw TCP connections that send only
	// the HTTP/2 preface and an empty SETTINGS frame (one in ten only
	// "PRI "), never a call.
	t.Run("connections that never authenticate", func(t *testing.T) {
		const hosts, per = 9, 100
		preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
		var conns []net.Conn
		for h := range hosts {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+h))}, Timeout: 5 * time.Second}
			for i := range per {
				c, err := d.Dial("tcp", n.peerAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if i%10 == 0 {
					c.Write(preface[:4])
				} else {
					c.Write(preface)
				}
				conns = append(conns, c)
			}
		}
		// A new client reads (sha256-checked) on both transports meanwhile.
		for _, grpcReads := range []bool{false, true} {
			c, err := peer.Dial(n.peerAddr, peer.ClientOptions{Token: []byte(testToken), GRPCReads: grpcReads})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			got, _, err := c.Read(ctx, vol, keys[0], 0, -1)
			cancel()
			c.Close()
			if err != nil || sha256.Sum256(got) != sha256.Sum256(blocks[keys[0]]) {
				t.Fatalf("read (grpc %v) during the flood: %d bytes, %v", grpcReads, len(got), err)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var last time.Duration
		open := 0
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetReadDeadline(start.Add(30 * time.Second))
				b := make([]byte, 4096)
				for {
					if _, err := c.Read(b); err != nil {
						mu.Lock()
						defer mu.Unlock()
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							open++
						}
						last = max(last, time.Since(start))
						return
					}
				}
			}()
		}
		wg.Wait()
		t.Logf("%d x %d pre-auth connections: %d still open after 30 s, the last closed %v after the reads", hosts, per, open, last)
		if open > 0 {
			t.Errorf("%d unauthenticated connections open after 30 s, want 0 (AuthTimeout 10 s)", open)
		}
		alive(t)
	})

	// Flood shape: a token holder's 4 connections x 16 concurrent Has
	// calls of empty keys: 524,280 (about 1 MiB, over the message limit)
	// and 40,000 (80 KB, over 4096 keys).
	t.Run("token holder's Has flood of empty keys", func(t *testing.T) {
		const conns, calls, rounds, bound = 4, 16, 4, 100 << 20
		huge := &peerpb.HasRequest{Volume: vol, Keys: make([]string, 524280)}
		big := &peerpb.HasRequest{Volume: vol, Keys: make([]string, 40000)}
		f := hasFlood(t, n, hasFloodShape{conns: conns, calls: calls, rounds: rounds, timeout: 60 * time.Second, token: testToken},
			func(call int) *peerpb.HasRequest {
				if call%2 == 1 {
					return big
				}
				return huge
			})
		t.Logf("peak RSS %d MB over a baseline of %d MB under %d x %d x %d Has calls of empty keys; answers %v",
			f.growth()>>20, f.base>>20, conns, calls, rounds, f.codes)
		if f.codes[codes.ResourceExhausted]+f.codes[codes.Internal] != conns*calls*rounds {
			t.Errorf("answers %v, want ResourceExhausted (size) and Internal (key count) only", f.codes)
		}
		f.checkRSS(t, bound)
		alive(t)
	})

	// Flood shape: one IP's 40 gRPC Reads of a cached 4 MiB block with a
	// 64 KiB window, never received.
	t.Run("stalled gRPC readers do not starve others", func(t *testing.T) {
		conn, err := grpc.NewClient(n.peerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(peer.TokenCredentials([]byte(testToken))),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 20)}}
				return d.DialContext(ctx, "tcp", addr)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		actx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		for i := range 40 {
			if _, err := peerpb.NewPeerClient(conn).Read(actx, &peerpb.ReadRequest{Volume: vol, Key: keys[i%len(keys)], Limit: -1}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		validReads(t) // 60 s each at most; these would wait out the stalled reads
		t.Logf("every block read on both transports (sha256-checked) in %v while one IP stalls 40 reads", time.Since(start))
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("valid reads took %v with stalled readers, want < 20 s", d)
		}
	})

	t.Run("refusals are counted on /metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + n.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := map[string]float64{}
		for _, m := range regexp.MustCompile(`(?m)^ringcache_peer_refused_total\{reason="([a-z_]+)"\} (\S+)$`).FindAllSubmatch(b, -1) {
			got[string(m[1])], _ = strconv.ParseFloat(string(m[2]), 64)
		}
		if got["no_token"] < 400 || got["no_bearer"] < 2 {
			t.Errorf("ringcache_peer_refused_total: %v; want no_token >= 400 (the flood), no_bearer >= 2", got)
		}
		if strings.Contains(n.LogTail(1<<20), testToken) {
			t.Error("the node logged the cluster token")
		}
		if !strings.Contains(n.LogTail(1<<20), "peer refused") {
			t.Error("no refusal in the node's log")
		}
	})
}

// hasFloodShape is a flood of gRPC Has calls: conns connections, each
// with calls concurrent callers making rounds calls one after another.
type hasFloodShape struct {
	conns, calls, rounds int
	timeout              time.Duration // of each call
	token                string        // sent as a Bearer token; "" sends none
}

// flood is what a flood did: the answers by status code and the node's
// peak RSS over the baseline it had when the flood began.
type flood struct {
	codes      map[codes.Code]int
	base, peak int64
}

func (f flood) growth() int64 { return f.peak - f.base }

// checkRSS fails the test when the node's peak RSS grew by more than bound.
func (f flood) checkRSS(t *testing.T, bound int64) {
	t.Helper()
	if f.growth() > bound {
		t.Errorf("peak RSS grew by %d MB, bound %d MB", f.growth()>>20, bound>>20)
	}
}

// hasFlood runs a flood of Has calls against n, caller call of each
// connection sending req(call), and returns when every call has ended.
func hasFlood(t *testing.T, n *cacheNode, shape hasFloodShape, req func(call int) *peerpb.HasRequest) flood {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64 << 20))}
	if shape.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(peer.TokenCredentials([]byte(shape.token))))
	}
	f := flood{codes: map[codes.Code]int{}, base: resetPeakRSS(t, n.Pid())}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range shape.conns {
		conn, err := grpc.NewClient(n.peerAddr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for call := range shape.calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range shape.rounds {
					ctx, cancel := context.WithTimeout(context.Background(), shape.timeout)
					_, err := peerpb.NewPeerClient(conn).Has(ctx, req(call))
					cancel()
					mu.Lock()
					f.codes[status.Code(err)]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	f.peak = peakRSS(t, n.Pid())
	return f
}

// rawAuth sends the authorization header exactly as given.
type rawAuth string

func (a rawAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(a)}, nil
}
func (rawAuth) RequireTransportSecurity() bool { return false }

// rawData is a data-plane connection spoken by hand (the protocol in
// pkg/peer/dataplane.go), so a test can send what the client never would.
type rawData struct {
	net.Conn
	r *bufio.Reader
}

func dialData(t *testing.T, addr, token string) *rawData {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := append([]byte("RCDP"), 0, 0)
	binary.BigEndian.PutUint16(b[4:], uint16(len(token)))
	if _, err := c.Write(append(b, token...)); err != nil {
		t.Fatal(err)
	}
	return &rawData{Conn: c, r: bufio.NewReader(c)}
}

func (d *rawData) request(t *testing.T, volume, key string, off, limit, deadline int64) {
	t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(volume)))
	b = append(b, volume...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	b = binary.BigEndian.AppendUint64(b, uint64(limit))
	b = binary.BigEndian.AppendUint64(b, uint64(deadline))
	if _, err := d.Write(append(b, 0)); err != nil {
		t.Fatal(err)
	}
}

// readStatus reads a reply's code byte and, for an error, its message.
func readStatus(r *bufio.Reader) error {
	code, err := r.ReadByte()
	if err != nil {
		return err
	}
	if code == 0 {
		return nil
	}
	var n uint16
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return err
	}
	msg := make([]byte, n)
	io.ReadFull(r, msg)
	return status.Error(codes.Code(code), string(msg))
}

// peakRSS is the process's VmHWM in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// resetPeakRSS resets VmHWM to the current RSS and returns it.
func resetPeakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
	return peakRSS(t, pid)
}

func protoSize(m *peerpb.HasRequest) int {
	n := 0
	for _, k := range m.Keys {
		n += len(k) + 3
	}
	return n
}
