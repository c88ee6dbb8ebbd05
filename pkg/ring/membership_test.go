package ring

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// testLog is a slog handler for tests. It keeps records for assertions and
// forwards them to t.Log until the test ends. memberlist goroutines can
// outlive Shutdown by a moment, and t.Log after the end of a test panics.
type testLog struct {
	t     testing.TB
	mu    *sync.Mutex
	ended *atomic.Bool
	recs  *[]string
	attrs []slog.Attr
}

func newTestLog(t testing.TB) (*slog.Logger, *testLog) {
	h := &testLog{t: t, mu: new(sync.Mutex), ended: new(atomic.Bool), recs: new([]string)}
	t.Cleanup(func() { h.ended.Store(true) })
	return slog.New(h), h
}

func (h *testLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *testLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.mu.Lock()
	*h.recs = append(*h.recs, b.String())
	h.mu.Unlock()
	if !h.ended.Load() {
		h.t.Log(b.String())
	}
	return nil
}

func (h *testLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *testLog) WithGroup(string) slog.Handler { return h }

// contains reports whether some record contains every one of subs.
func (h *testLog) contains(subs ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			return true
		}
	}
	return false
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

type nodeOpt func(*Options)

func withSeeds(s ...string) nodeOpt       { return func(o *Options) { o.Seeds = s } }
func withPort(p int) nodeOpt              { return func(o *Options) { o.BindPort = p } }
func withVersion(v int) nodeOpt           { return func(o *Options) { o.Self.PlacementVersion = v } }
func withKey(k []byte) nodeOpt            { return func(o *Options) { o.SecretKeys = [][]byte{k} } }
func withRejoin(d time.Duration) nodeOpt  { return func(o *Options) { o.RejoinInterval = d } }
func withAddr(a string) nodeOpt           { return func(o *Options) { o.Self.Addr = a } }
func withLogger(l *slog.Logger) nodeOpt   { return func(o *Options) { o.Logger = l } }
func withClock(c *clocktest.Fake) nodeOpt { return func(o *Options) { o.Clock = c } }

// startNode starts a gossip node on 127.0.0.1 with the local profile. Its
// gRPC address is fake: placement never dials it.
func startNode(t *testing.T, id string, opts ...nodeOpt) *Membership {
	t.Helper()
	logger, _ := newTestLog(t)
	o := Options{
		Self:     Member{ID: id, Addr: "127.0.0.1:7070", Weight: 1, PlacementVersion: 1},
		BindAddr: "127.0.0.1",
		Profile:  ProfileLocal,
		Logger:   logger,
	}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// waitView waits until cond holds for m's view, using Changes the way
// callers are meant to.
func waitView(t *testing.T, m *Membership, timeout time.Duration, what string, cond func(*View) bool) *View {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := m.Changes()
		v := m.View()
		if cond(v) {
			return v
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %s: not reached within %v; view epoch %d members %v",
				m.self.ID, what, timeout, v.Epoch, ids(v.Placement.Members()))
		}
	}
}

// pollGossip waits until cond holds, polling with a deadline. It is for
// memberlist's own state (gossip members, refusal counts), which memberlist
// changes on its real-time probes and gossip rounds and announces by no
// event this package sees; ring state is awaited with waitView or settle.
func pollGossip(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits until m's view reflects every peer event memberlist has
// delivered so far.
func settle(t *testing.T, m *Membership) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.settle(ctx); err != nil {
		t.Fatalf("%s: settle: %v", m.self.ID, err)
	}
}

func memberIDs(v *View) []string {
	var out []string
	for _, m := range v.Placement.Members() {
		out = append(out, m.ID)
	}
	return out
}

func hasIDs(want ...string) func(*View) bool {
	slices.Sort(want)
	return func(v *View) bool { return slices.Equal(memberIDs(v), want) }
}

// freePort returns a port that was free for TCP and UDP on 127.0.0.1 a moment
// ago.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

var convergeKeys = func() []string {
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = fmt.Sprintf("5f0c5e8e-8a3b-4f47-9d0e-1d2f3a4b5c6d/chunks/%d/%d/%d_0_4194304", i/50, i, i*7)
	}
	return keys
}()

func ownerTable(v *View) []string {
	out := make([]string, len(convergeKeys))
	for i, k := range convergeKeys {
		out[i] = ids(v.Placement.Owners(k, 3))
	}
	return out
}

// TestMembershipConverge: three encrypted nodes converge on the same
// placement, which is exactly what NewPlacement gives for their member set.
// Seeds include the node itself and a DNS name.
func TestMembershipConverge(t *testing.T) {
	var (
		mu       sync.Mutex
		epochs   []uint64
		inFlight atomic.Int32
	)
	onChange := func(v *View) {
		if inFlight.Add(1) != 1 {
			t.Error("OnChange called concurrently")
		}
		defer inFlight.Add(-1)
		mu.Lock()
		epochs = append(epochs, v.Epoch)
		mu.Unlock()
	}

	a := startNode(t, "node-a", withKey(testKey), func(o *Options) { o.OnChange = onChange })
	bPort := freePort(t)
	b := startNode(t, "node-b", withKey(testKey), withPort(bPort),
		withSeeds(a.GossipAddr(), net.JoinHostPort("127.0.0.1", strconv.Itoa(bPort))))
	_, aPort, _ := net.SplitHostPort(a.GossipAddr())
	c := startNode(t, "node-c", withKey(testKey), withAddr("127.0.0.1:7071"),
		withSeeds("localhost:"+aPort, b.GossipAddr()))

	var views []*View
	for _, m := range []*Membership{a, b, c} {
		views = append(views, waitView(t, m, 10*time.Second, "3 members", hasIDs("node-a", "node-b", "node-c")))
	}
	want := mustPlacement(t, Config{}, views[0].Placement.Members())
	for i, v := range views {
		if v.Self.ID != []string{"node-a", "node-b", "node-c"}[i] {
			t.Errorf("view %d Self = %v", i, v.Self)
		}
		if v.Epoch < 2 {
			t.Errorf("%s: epoch %d after joins, want >= 2", v.Self.ID, v.Epoch)
		}
		if !slices.Equal(v.Placement.Members(), want.Members()) {
			t.Errorf("%s: members %v, want %v", v.Self.ID, v.Placement.Members(), want.Members())
		}
		if got := ownerTable(v); !slices.Equal(got, ownerTable(&View{Placement: want})) {
			t.Errorf("%s: owners differ from NewPlacement", v.Self.ID)
		}
	}
	// node-c advertises its own gRPC address; the others must see it.
	for _, m := range views[0].Placement.Members() {
		if m.ID == "node-c" && m.Addr != "127.0.0.1:7071" {
			t.Errorf("node-c addr = %q", m.Addr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(epochs) < 2 || epochs[0] != 1 {
		t.Fatalf("OnChange epochs = %v, want 1, 2, ...", epochs)
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] != epochs[i-1]+1 {
			t.Fatalf("OnChange epochs = %v, want consecutive", epochs)
		}
	}
}

// TestMembershipLeave: a graceful leave is seen by peers within about a
// gossip round, without failure detection.
func TestMembershipLeave(t *testing.T) {
	a := startNode(t, "node-a")
	b := startNode(t, "node-b", withSeeds(a.GossipAddr()))
	c := startNode(t, "node-c", withSeeds(a.GossipAddr()))
	for _, m := range []*Membership{a, b, c} {
		waitView(t, m, 10*time.Second, "3 members", hasIDs("node-a", "node-b", "node-c"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, m := range []*Membership{a, b} {
		// Leave only returns once the broadcast is out, and peers drop
		// the node when they get it. 2 s leaves room for -race on a
		// busy 2-core machine; measured ~0.1 s.
		waitView(t, m, 2*time.Second, "node-c gone", hasIDs("node-a", "node-b"))
	}
	t.Logf("peers dropped the leaving node %v after Leave was called", time.Since(start).Round(time.Millisecond))
	if err := c.Leave(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Leave = %v, want ErrClosed", err)
	}
	if err := c.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave = %v", err)
	}
}

// TestMembershipCrashAndRestart: a node that stops without leaving is
// dropped within FailureDetectionTime. When it restarts with the same ID on
// a new gossip port and gRPC address, it gets back the same partitions.
func TestMembershipCrashAndRestart(t *testing.T) {
	a := startNode(t, "node-a")
	b := startNode(t, "node-b", withSeeds(a.GossipAddr()))
	c := startNode(t, "node-c", withSeeds(a.GossipAddr(), b.GossipAddr()))
	var before []string
	for _, m := range []*Membership{a, b, c} {
		before = ownerTable(waitView(t, m, 10*time.Second, "3 members", hasIDs("node-a", "node-b", "node-c")))
	}
	bound := a.FailureDetectionTime()

	start := time.Now()
	if err := c.Shutdown(); err != nil { // crash: no leave broadcast
		t.Fatal(err)
	}
	for _, m := range []*Membership{a, b} {
		waitView(t, m, bound, "crashed node-c dropped", hasIDs("node-a", "node-b"))
	}
	took := time.Since(start)
	t.Logf("crash detected by both peers after %v (FailureDetectionTime bound %v)", took.Round(time.Millisecond), bound)
	if got := a.View().Placement.Owners(convergeKeys[0], 3); len(got) != 2 {
		t.Errorf("owners after crash = %v, want 2", ids(got))
	}

	// Restart: same ID, new gossip port and new gRPC address (a new pod IP).
	c2 := startNode(t, "node-c", withSeeds(a.GossipAddr()), withAddr("127.0.0.1:7171"))
	for _, m := range []*Membership{a, b, c2} {
		v := waitView(t, m, 10*time.Second, "node-c back", hasIDs("node-a", "node-b", "node-c"))
		if got := ownerTable(v); !slices.Equal(got, before) {
			t.Errorf("%s: owners after restart differ from before the crash", m.self.ID)
		}
		for _, mem := range v.Placement.Members() {
			if mem.ID == "node-c" && mem.Addr != "127.0.0.1:7171" {
				t.Errorf("%s: node-c addr = %q, want the new address", m.self.ID, mem.Addr)
			}
		}
	}
}

// TestMembershipPlacementVersionMismatch: a node on another placement
// version gossips with the cluster but shares no ring with it, on either
// side. The exclusion is logged.
func TestMembershipPlacementVersionMismatch(t *testing.T) {
	logger, logs := newTestLog(t)
	a := startNode(t, "node-a", withLogger(logger))
	b := startNode(t, "node-b", withSeeds(a.GossipAddr()))
	waitView(t, a, 10*time.Second, "2 members", hasIDs("node-a", "node-b"))
	c := startNode(t, "node-c", withSeeds(a.GossipAddr()), withVersion(2))

	pollGossip(t, 10*time.Second, "node-c a gossip member of all three", func() bool {
		return a.ml.NumMembers() == 3 && c.ml.NumMembers() == 3 && b.ml.NumMembers() == 3
	})
	// Memberlist runs the event delegate before it lists a node as a
	// member, and exclusion publishes nothing. Once each rebuild loop has
	// rebuilt from the events delivered so far, nothing may have changed.
	for _, m := range []*Membership{a, b, c} {
		settle(t, m)
	}
	for _, m := range []*Membership{a, b} {
		if got := memberIDs(m.View()); !slices.Equal(got, []string{"node-a", "node-b"}) {
			t.Errorf("%s: ring members %v, want node-a, node-b", m.self.ID, got)
		}
	}
	if got := memberIDs(c.View()); !slices.Equal(got, []string{"node-c"}) {
		t.Errorf("node-c: ring members %v, want only itself", got)
	}
	if !logs.contains("excluding gossip peer", "node-c", "placement version 2") {
		t.Error("exclusion of node-c was not logged")
	}
}

// TestMembershipRejoinLoop: the only seed is down at start. Start still
// succeeds, the rejoin loop retries every RejoinInterval of its clock, and
// it joins once the seed comes up.
func TestMembershipRejoinLoop(t *testing.T) {
	seedPort := freePort(t)
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(seedPort))
	clk := clocktest.New(time.Now())
	logger, logs := newTestLog(t)
	a := startNode(t, "node-a", withSeeds(seed), withClock(clk), withLogger(logger))
	// rearmed waits until the rejoin loop has armed its next timer: the
	// join before it is over.
	rearmed := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatalf("the rejoin loop armed no timer: %v", err)
		}
	}
	const failed = "no gossip seed reachable"
	rearmed()
	if n := logs.count(failed); n != 1 {
		t.Fatalf("%d failed joins logged after Start, want 1", n)
	}
	// The rejoin delay is RejoinInterval ± 10%.
	clk.Advance(DefaultRejoinInterval*9/10 - time.Millisecond)
	if n := logs.count(failed); n != 1 || clk.Waiters() != 1 {
		t.Fatalf("rejoined before RejoinInterval-10%%: %d failed joins, %d timers", n, clk.Waiters())
	}
	clk.Advance(DefaultRejoinInterval/5 + time.Millisecond)
	rearmed()
	if n := logs.count(failed); n != 2 {
		t.Fatalf("%d failed joins logged after one rejoin interval, want 2", n)
	}
	clk.Advance(DefaultRejoinInterval * 11 / 10)
	rearmed()
	if n := logs.count(failed); n != 3 {
		t.Fatalf("%d failed joins logged after two rejoin intervals, want 3", n)
	}
	if got := memberIDs(a.View()); !slices.Equal(got, []string{"node-a"}) {
		t.Fatalf("members %v before the seed is up", got)
	}
	b := startNode(t, "node-b", withPort(seedPort))
	if b.GossipAddr() != seed {
		t.Fatalf("seed node on %s, want %s", b.GossipAddr(), seed)
	}
	clk.Advance(DefaultRejoinInterval * 11 / 10)
	for _, m := range []*Membership{a, b} {
		waitView(t, m, 5*time.Second, "joined via rejoin loop", hasIDs("node-a", "node-b"))
	}
}

// rawDelegate is a memberlist.Delegate with settable metadata, for a peer
// that is not a ring node.
type rawDelegate struct{ meta atomic.Pointer[[]byte] }

func (d *rawDelegate) NodeMeta(int) []byte             { return *d.meta.Load() }
func (d *rawDelegate) NotifyMsg([]byte)                {}
func (d *rawDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *rawDelegate) LocalState(bool) []byte          { return nil }
func (d *rawDelegate) MergeRemoteState([]byte, bool)   {}

// TestMembershipBadPeerMetadata: a gossip peer with garbage metadata is
// logged and left out, without a panic. When it fixes its metadata
// (NotifyUpdate), it joins the ring.
func TestMembershipBadPeerMetadata(t *testing.T) {
	logger, logs := newTestLog(t)
	a := startNode(t, "node-a", withLogger(logger))

	d := &rawDelegate{}
	garbage := []byte("\x00{not json")
	d.meta.Store(&garbage)
	conf := memberlist.DefaultLocalConfig()
	conf.Name, conf.BindAddr, conf.BindPort, conf.AdvertisePort = "raw", "127.0.0.1", 0, 0
	conf.Delegate = d
	conf.Logger = log.New(slogWriter{log: slog.New(slog.DiscardHandler)}, "", 0)
	raw, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Shutdown() })
	if _, err := raw.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	pollGossip(t, 5*time.Second, "raw peer a gossip member", func() bool { return a.ml.NumMembers() == 2 })
	settle(t, a)
	if got := memberIDs(a.View()); !slices.Equal(got, []string{"node-a"}) {
		t.Errorf("members %v with a garbage peer, want only node-a", got)
	}
	if !logs.contains("excluding gossip peer", "raw", "bad node metadata") {
		t.Error("bad metadata was not logged")
	}

	good, _ := encodeMeta(Member{ID: "raw", Addr: "127.0.0.1:7999", Weight: 2, PlacementVersion: 1})
	d.meta.Store(&good)
	if err := raw.UpdateNode(time.Second); err != nil {
		t.Fatal(err)
	}
	v := waitView(t, a, 5*time.Second, "raw peer placed after update", hasIDs("node-a", "raw"))
	if sh := v.Placement.Shares(); sh["raw"] < sh["node-a"] {
		t.Errorf("weight-2 peer share %.2f < weight-1 share %.2f", sh["raw"], sh["node-a"])
	}
}

// TestStartContext: Start gives up when its context ends during the first
// join (here a seed that accepts TCP and never answers), and releases the
// gossip port. A context that is already done fails at once.
func TestStartContext(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold the connection open, say nothing
		}
	}()

	port := freePort(t)
	logger, _ := newTestLog(t)
	o := Options{Self: Member{ID: "x", Addr: "127.0.0.1:1"}, BindAddr: "127.0.0.1", BindPort: port,
		Profile: ProfileLocal, Logger: logger, Seeds: []string{hang.Addr().String()}}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Start(ctx, o); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with hanging seed: err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 900*time.Millisecond { // TCPTimeout is 1 s
		t.Errorf("Start took %v to honor a 100 ms context", took)
	}

	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := Start(done, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with canceled context: err = %v, want Canceled", err)
	}

	o.Seeds = nil
	m, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	_ = m.Shutdown()
}

func TestFailureDetectionTime(t *testing.T) {
	// Local profile: probe 1 s, suspicion mult 3, max mult 6, gossip
	// 100 ms, retransmit mult 2.
	m := &Membership{probeInterval: time.Second, gossipInterval: 100 * time.Millisecond,
		suspicionMult: 3, suspicionMaxMult: 6, retransmitMult: 2}
	tests := []struct {
		n    int
		want time.Duration
	}{
		// probe cycle + probe + suspicion + dissemination
		{1, 1*time.Second + time.Second + 3*time.Second + 200*time.Millisecond},  // no confirmers: suspicion min
		{2, 1*time.Second + time.Second + 3*time.Second + 200*time.Millisecond},  // n-2 < k: suspicion min
		{3, 2*time.Second + time.Second + 18*time.Second + 200*time.Millisecond}, // k=1 confirmer: suspicion max
	}
	for _, tt := range tests {
		if got := m.failureDetectionTime(tt.n); got != tt.want {
			t.Errorf("n=%d: %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	base := func() Options {
		return Options{Self: Member{ID: "n1", Addr: "10.0.0.1:7070"}, BindAddr: "10.0.0.1"}
	}
	o := base()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Self.Weight != 0 || o.RejoinInterval != 0 || o.Profile != "" || o.Logger != nil || o.Clock != nil {
		t.Errorf("Validate modified the options: %+v", o)
	}
	o.EnsureDefaults()
	if o.Self.Weight != 1 || o.RejoinInterval != DefaultRejoinInterval || o.Profile != ProfileLAN ||
		o.Placement.PartitionCount != DefaultPartitionCount || o.Logger == nil || o.Clock == nil {
		t.Errorf("defaults not filled: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("defaulted options: %v", err)
	}
	again := o
	again.EnsureDefaults()
	if !reflect.DeepEqual(again, o) {
		t.Errorf("EnsureDefaults is not idempotent: %+v, then %+v", o, again)
	}
	o = Options{Self: Member{ID: "n1", Addr: "10.0.0.1:7070"}, AdvertiseAddr: "10.0.0.1"}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil || o.BindAddr != "0.0.0.0" {
		t.Errorf("bind default: %q, %v", o.BindAddr, err)
	}

	tests := []struct {
		name string
		mut  func(*Options)
		want error
	}{
		{"no id", func(o *Options) { o.Self.ID = "" }, ErrInvalidMember},
		{"no addr", func(o *Options) { o.Self.Addr = "" }, ErrInvalidMember},
		{"addr without port", func(o *Options) { o.Self.Addr = "10.0.0.1" }, ErrInvalidOptions},
		{"weight too big", func(o *Options) { o.Self.Weight = MaxWeight + 1 }, ErrInvalidMember},
		{"metadata too big", func(o *Options) { o.Self.ID = strings.Repeat("x", 500) }, ErrInvalidOptions},
		{"bind not an IP", func(o *Options) { o.BindAddr = "localhost" }, ErrInvalidOptions},
		{"wildcard bind without advertise", func(o *Options) { o.BindAddr = "0.0.0.0" }, ErrInvalidOptions},
		{"ipv6 wildcard without advertise", func(o *Options) { o.BindAddr = "::" }, ErrInvalidOptions},
		{"advertise not an IP", func(o *Options) { o.AdvertiseAddr = "pod" }, ErrInvalidOptions},
		{"bad port", func(o *Options) { o.BindPort = 70000 }, ErrInvalidOptions},
		{"empty seed", func(o *Options) { o.Seeds = []string{"a:1", ""} }, ErrInvalidOptions},
		{"negative rejoin", func(o *Options) { o.RejoinInterval = -time.Second }, ErrInvalidOptions},
		{"bad key", func(o *Options) { o.SecretKeys = [][]byte{testKey, []byte("short")} }, ErrInvalidOptions},
		{"repeated key", func(o *Options) { o.SecretKeys = [][]byte{testKey, testKey} }, ErrInvalidOptions},
		{"too many keys", func(o *Options) { o.SecretKeys = make([][]byte, MaxKeys+1) }, ErrInvalidOptions},
		{"bad profile", func(o *Options) { o.Profile = "wan" }, ErrInvalidOptions},
		{"bad placement", func(o *Options) { o.Placement.Load = 0.5 }, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mut(&o)
			if err := o.Validate(); !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v, want %v and %v", err, tt.want, ErrInvalidOptions)
			}
		})
	}
	// Every problem is reported at once.
	o = Options{Self: Member{Addr: "10.0.0.1:7070"}, BindAddr: "localhost", Profile: "wan"}
	err := o.Validate()
	for _, msg := range []string{"empty id", "bind addr", "unknown profile"} {
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("err = %v, want it to mention %q", err, msg)
		}
	}
}

func TestDecodeMeta(t *testing.T) {
	good := Member{ID: "n1", Addr: "10.0.0.1:7070", Weight: 3, PlacementVersion: 4}
	enc, err := encodeMeta(good)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeMeta("n1", enc); err != nil || got != good {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	tests := []struct {
		name string
		node string
		meta string
	}{
		{"empty", "n1", ""},
		{"garbage", "n1", "\x00\xff"},
		{"truncated", "n1", string(enc[:len(enc)-3])},
		{"not an object", "n1", `[1,2]`},
		{"wrong type", "n1", `{"v":1,"id":"n1","addr":"a:1","w":"x","pv":1}`},
		{"no version", "n1", `{"id":"n1","addr":"a:1","w":1,"pv":1}`},
		{"future version", "n1", `{"v":2,"id":"n1","addr":"a:1","w":1,"pv":1}`},
		{"id mismatch", "n2", string(enc)},
		{"no addr", "n1", `{"v":1,"id":"n1","w":1,"pv":1}`},
		{"weight 0", "n1", `{"v":1,"id":"n1","addr":"a:1","w":0,"pv":1}`},
		{"weight too big", "n1", `{"v":1,"id":"n1","addr":"a:1","w":99,"pv":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeMeta(tt.node, []byte(tt.meta)); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("err = %v, want ErrBadMeta", err)
			}
		})
	}
	// Unknown fields are ignored, so later versions can add fields.
	if _, err := decodeMeta("n1", []byte(`{"v":1,"id":"n1","addr":"a:1","w":1,"pv":0,"zone":"z1"}`)); err != nil {
		t.Errorf("unknown field: %v", err)
	}
}

func TestSlogWriter(t *testing.T) {
	logger, logs := newTestLog(t)
	l := log.New(slogWriter{log: logger}, "", 0) // no refusals: every line logged
	l.Printf("[DEBUG] memberlist: dropped")
	l.Printf("[INFO] memberlist: hello %d", 1)
	l.Printf("[WARN] memberlist: careful")
	l.Printf("[ERR] memberlist: broken")
	l.Printf("no prefix")
	for _, want := range []string{"INFO hello 1", "WARN careful", "ERROR broken", "INFO no prefix"} {
		if !logs.contains(want) {
			t.Errorf("no record %q", want)
		}
	}
	if logs.contains("dropped") {
		t.Error("debug record passed an info-level handler")
	}
}
