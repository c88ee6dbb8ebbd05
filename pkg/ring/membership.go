package ring

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringcache/ringcache/pkg/clock"
)

// This file is the I/O edge of the package. It owns a memberlist gossip
// node, tracks the peers memberlist reports, and publishes immutable Views.
//
// Concurrency:
//   - memberlist calls the event delegate with its node lock held. The
//     delegate only decodes metadata, updates m.peers under m.mu, and pokes
//     the rebuild loop through a 1-slot channel. It never blocks and never
//     calls back into memberlist.
//   - A single rebuild goroutine builds Placements, stores Views and calls
//     OnChange. A burst of events (say, 50 nodes joining) coalesces into a
//     few rebuilds, and memberlist never waits on a build. A build takes
//     ~7 ms for 100 members of weight 1 and ~0.27 s for 100 members of
//     weight 8, the MaxWeight (see BenchmarkNewPlacement).
//   - A rejoin goroutine joins seeds that are not yet members, every
//     RejoinInterval.
//
// go-metrics: memberlist sends metrics to the hashicorp/go-metrics global
// sink. That is a no-op BlackholeSink unless some other code installs a
// global sink, so this package leaves the global alone.

// Profile names for Options.Profile.
const (
	ProfileLAN   = "lan"   // memberlist.DefaultLANConfig: 1 s probes, 500 ms probe timeout
	ProfileLocal = "local" // memberlist.DefaultLocalConfig: 200 ms probe timeout, short suspicion; for tests
)

// DefaultRejoinInterval is the default Options.RejoinInterval.
const DefaultRejoinInterval = 30 * time.Second

const (
	// defaultLeaveTimeout bounds the leave broadcast when Leave's context
	// has no deadline.
	defaultLeaveTimeout = 5 * time.Second
	// resolveTimeout bounds one DNS lookup of a seed.
	resolveTimeout = 5 * time.Second
	// deadNodeReclaimTime lets a node that restarted with a new gossip
	// address (for example a new pod IP) take back its ID once the old
	// incarnation is marked dead. memberlist's default (0) never allows
	// that; the node would wait until the dead entry is forgotten
	// (GossipToTheDeadTime, 30 s on LAN). IDs belong to one node, so a
	// dead holder of the ID can always be replaced.
	deadNodeReclaimTime = time.Millisecond
)

// Sentinel errors of the membership layer.
var (
	// ErrInvalidOptions reports Options that fail validation.
	ErrInvalidOptions = errors.New("ring: invalid options")
	// ErrClosed is returned by Leave after Leave or Shutdown.
	ErrClosed = errors.New("ring: membership closed")
)

// View is an immutable snapshot of the ring as one node sees it. Do not
// modify a View or anything it points to.
type View struct {
	// Epoch goes up by one each time this node publishes a changed member
	// set. It starts at 1 with a Self-only view. Epochs are local to a
	// node and mean nothing across nodes.
	Epoch uint64
	Self  Member
	// Placement covers Self and every live peer with Self's
	// PlacementVersion. Peers on other versions, or with bad metadata, are
	// logged and left out.
	Placement *Placement
}

// Options configures Start.
type Options struct {
	Self           Member        // ID is the memberlist node name; Addr is the peer gRPC address advertised in node metadata. Weight 0 means 1.
	BindAddr       string        // gossip bind IP, default "0.0.0.0"
	BindPort       int           // gossip port (TCP and UDP); 0 picks a free one, see GossipAddr
	AdvertiseAddr  string        // gossip IP advertised to peers; required when BindAddr is unspecified (0.0.0.0 or ::), e.g. the pod IP
	AdvertisePort  int           // 0 means the bound port
	Seeds          []string      // host:port of gossip seeds; may include self and DNS names (all A/AAAA records are used); a missing port means the local gossip port
	RejoinInterval time.Duration // default 30s: how often to join seeds that are not current members (heals partitions, seeds not resolvable at start)
	SecretKeys     [][]byte      // AES keys (16, 24 or 32 bytes, at most MaxKeys) that encrypt and authenticate gossip; the first encrypts, all decrypt. None: plaintext gossip that anyone can join (tests only)
	Profile        string        // ProfileLAN (default) or ProfileLocal
	Placement      Config        // must be the same on all nodes with the same PlacementVersion
	Logger         *slog.Logger  // nil discards logs
	OnChange       func(*View)   // optional; called from one goroutine, first with the initial view, then after each swap; must not call Leave or Shutdown
}

// Validate fills in defaults and checks the options. Errors wrap
// ErrInvalidOptions (or ErrInvalidConfig for Placement).
func (o *Options) Validate() error {
	if o.Self.Weight == 0 {
		o.Self.Weight = 1
	}
	if err := o.Self.validate(); err != nil {
		return fmt.Errorf("%w: self: %w", ErrInvalidOptions, err)
	}
	if _, _, err := net.SplitHostPort(o.Self.Addr); err != nil {
		return fmt.Errorf("%w: self addr %q: %w", ErrInvalidOptions, o.Self.Addr, err)
	}
	meta, err := encodeMeta(o.Self)
	if err != nil {
		return fmt.Errorf("%w: encode metadata: %w", ErrInvalidOptions, err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: node metadata is %d bytes, limit %d (shorten ID or Addr)", ErrInvalidOptions, len(meta), memberlist.MetaMaxSize)
	}

	if o.BindAddr == "" {
		o.BindAddr = "0.0.0.0"
	}
	bindIP := net.ParseIP(o.BindAddr)
	if bindIP == nil {
		return fmt.Errorf("%w: bind addr %q is not an IP", ErrInvalidOptions, o.BindAddr)
	}
	if o.AdvertiseAddr == "" && bindIP.IsUnspecified() {
		return fmt.Errorf("%w: advertise addr is required when binding to %s", ErrInvalidOptions, o.BindAddr)
	}
	if o.AdvertiseAddr != "" && net.ParseIP(o.AdvertiseAddr) == nil {
		return fmt.Errorf("%w: advertise addr %q is not an IP", ErrInvalidOptions, o.AdvertiseAddr)
	}
	if o.BindPort < 0 || o.BindPort > math.MaxUint16 {
		return fmt.Errorf("%w: bind port %d out of range", ErrInvalidOptions, o.BindPort)
	}
	if o.AdvertisePort < 0 || o.AdvertisePort > math.MaxUint16 {
		return fmt.Errorf("%w: advertise port %d out of range", ErrInvalidOptions, o.AdvertisePort)
	}
	for _, s := range o.Seeds {
		if s == "" {
			return fmt.Errorf("%w: empty seed", ErrInvalidOptions)
		}
	}
	if o.RejoinInterval == 0 {
		o.RejoinInterval = DefaultRejoinInterval
	}
	if o.RejoinInterval < 0 {
		return fmt.Errorf("%w: negative rejoin interval %v", ErrInvalidOptions, o.RejoinInterval)
	}
	if len(o.SecretKeys) > MaxKeys {
		return fmt.Errorf("%w: %d secret keys, at most %d", ErrInvalidOptions, len(o.SecretKeys), MaxKeys)
	}
	for i, k := range o.SecretKeys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("%w: secret key %d must be 16, 24 or 32 bytes, got %d", ErrInvalidOptions, i+1, len(k))
		}
		for _, prev := range o.SecretKeys[:i] {
			if bytes.Equal(prev, k) {
				return fmt.Errorf("%w: secret key %d repeats an earlier one", ErrInvalidOptions, i+1)
			}
		}
	}
	switch o.Profile {
	case "":
		o.Profile = ProfileLAN
	case ProfileLAN, ProfileLocal:
	default:
		return fmt.Errorf("%w: unknown profile %q (want %q or %q)", ErrInvalidOptions, o.Profile, ProfileLAN, ProfileLocal)
	}
	if err := o.Placement.Validate(); err != nil {
		return fmt.Errorf("%w: placement: %w", ErrInvalidOptions, err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Membership is a running gossip node. It publishes a View of the ring.
// Methods are safe for concurrent use.
type Membership struct {
	self     Member
	cfg      Config
	log      *slog.Logger
	onChange func(*View)
	seeds    []string
	rejoin   time.Duration

	ml       *memberlist.Memberlist
	refusals *refusals
	// Failure-detection parameters, copied from the memberlist config.
	probeInterval, gossipInterval                   time.Duration
	suspicionMult, suspicionMaxMult, retransmitMult int
	defaultSeedPort                                 string

	view atomic.Pointer[View]

	mu      sync.Mutex
	peers   map[string]peer // by node name; never contains self
	changes chan struct{}   // closed and replaced on each swap

	kick      chan struct{}      // 1-slot; pokes the rebuild loop
	ctx       context.Context    // canceled by Shutdown
	stop      context.CancelFunc // cancels ctx
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// peer is what the event delegate knows about one remote node.
type peer struct {
	meta   string // raw metadata, to skip no-op updates
	member Member
	ok     bool // placed; false if metadata is bad or the version differs
}

// Start creates the gossip node and joins the seeds. Not reaching any seed
// is not an error. Start logs it, and the rejoin loop keeps trying every
// RejoinInterval. ctx bounds only the first join attempt: if ctx ends first,
// Start shuts the node down and returns ctx's error. The node lives until
// Leave or Shutdown.
func Start(ctx context.Context, o Options) (*Membership, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ring: start: %w", err)
	}
	meta, err := encodeMeta(o.Self)
	if err != nil {
		return nil, fmt.Errorf("ring: encode metadata: %w", err)
	}
	initial, err := NewPlacement(o.Placement, []Member{o.Self})
	if err != nil {
		return nil, err
	}
	m := &Membership{
		self:     o.Self,
		cfg:      o.Placement,
		log:      o.Logger.With("node", o.Self.ID),
		onChange: o.OnChange,
		seeds:    slices.Clone(o.Seeds),
		rejoin:   o.RejoinInterval,
		peers:    make(map[string]peer),
		changes:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		refusals: newRefusals(clock.Real()),
	}
	m.ctx, m.stop = context.WithCancel(context.Background())
	m.view.Store(&View{Epoch: 1, Self: o.Self, Placement: initial})

	var c *memberlist.Config
	if o.Profile == ProfileLocal {
		c = memberlist.DefaultLocalConfig()
	} else {
		c = memberlist.DefaultLANConfig()
	}
	c.Name = o.Self.ID
	c.BindAddr, c.BindPort = o.BindAddr, o.BindPort
	c.AdvertiseAddr, c.AdvertisePort = o.AdvertiseAddr, o.AdvertisePort
	if c.AdvertisePort == 0 {
		c.AdvertisePort = o.BindPort // memberlist also sets it when it picks a port for BindPort 0
	}
	if len(o.SecretKeys) > 0 {
		var rest [][]byte
		for _, k := range o.SecretKeys[1:] {
			rest = append(rest, slices.Clone(k))
		}
		// GossipVerifyIncoming and GossipVerifyOutgoing stay true (the
		// default): plaintext gossip is refused, never accepted.
		kr, err := memberlist.NewKeyring(rest, slices.Clone(o.SecretKeys[0]))
		if err != nil {
			m.stop()
			return nil, fmt.Errorf("ring: gossip keyring: %w", err)
		}
		c.Keyring = kr
	}
	c.DeadNodeReclaimTime = deadNodeReclaimTime
	c.Delegate = metaDelegate(meta)
	c.Events = (*eventDelegate)(m)
	c.Conflict = (*conflictDelegate)(m)
	c.Logger = log.New(slogWriter{log: m.log.With("component", "memberlist"), refusals: m.refusals}, "", 0)

	// Incoming streams limited (streamlimit.go): unauthenticated
	// connections must not grow memory with their number.
	tr, err := listenGossip(c, clock.Real(), func(r Refusal, detail string) { m.refusals.refuse(m.log, r, detail) })
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("ring: start gossip on %s: %w", net.JoinHostPort(o.BindAddr, strconv.Itoa(o.BindPort)), err)
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = tr.Shutdown()
		m.stop()
		return nil, fmt.Errorf("ring: start gossip on %s: %w", net.JoinHostPort(o.BindAddr, strconv.Itoa(o.BindPort)), err)
	}
	m.ml = ml
	m.probeInterval, m.gossipInterval = c.ProbeInterval, c.GossipInterval
	m.suspicionMult, m.suspicionMaxMult, m.retransmitMult = c.SuspicionMult, c.SuspicionMaxTimeoutMult, c.RetransmitMult
	m.defaultSeedPort = strconv.Itoa(c.AdvertisePort)
	m.log.Info("gossip started", "gossip_addr", m.GossipAddr(), "addr", o.Self.Addr,
		"weight", o.Self.Weight, "placement_version", o.Self.PlacementVersion, "profile", o.Profile,
		"encrypted", len(o.SecretKeys) > 0, "gossip_key_ids", keyIDs(o.SecretKeys), "seeds", o.Seeds)

	m.wg.Add(1)
	go m.rebuildLoop()

	first := make(chan struct{})
	go func() {
		defer close(first)
		m.join()
	}()
	select {
	case <-first:
	case <-ctx.Done():
		_ = m.Shutdown()
		return nil, fmt.Errorf("ring: start: initial join: %w", ctx.Err())
	}

	m.wg.Add(1)
	go m.rejoinLoop()
	return m, nil
}

// View returns the current view. It is never nil.
func (m *Membership) View() *View { return m.view.Load() }

// Changes returns a channel that is closed at the next view swap. To wait
// for a condition without missing a change, get the channel first, then
// check View:
//
//	for {
//		ch := m.Changes()
//		if ready(m.View()) {
//			break
//		}
//		<-ch
//	}
func (m *Membership) Changes() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changes
}

// Refused returns how many incoming gossip messages memberlist refused for
// reason since Start (see Refusal). Refusals are logged as "gossip refused",
// at most once per reason every 10 s.
func (m *Membership) Refused(reason Refusal) uint64 { return m.refusals.count(reason) }

// GossipAddr returns the advertised gossip host:port. Other nodes can use it
// as a seed.
func (m *Membership) GossipAddr() string { return m.ml.LocalNode().Address() }

// Leave broadcasts that this node is leaving, waits for the broadcast to go
// out (until ctx's deadline, or 5 s without one), then shuts down. Peers drop
// the node as soon as the broadcast reaches them, without waiting for failure
// detection. Leave returns ErrClosed after Leave or Shutdown.
func (m *Membership) Leave(ctx context.Context) error {
	select {
	case <-m.ctx.Done():
		return ErrClosed
	default:
	}
	timeout := defaultLeaveTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	var leaveErr error
	if timeout > 0 {
		errc := make(chan error, 1)
		go func() { errc <- m.ml.Leave(timeout) }()
		select {
		case leaveErr = <-errc:
		case <-ctx.Done():
			leaveErr = ctx.Err()
		}
	} else {
		leaveErr = context.DeadlineExceeded
	}
	if leaveErr != nil {
		leaveErr = fmt.Errorf("ring: leave: %w", leaveErr)
		m.log.Warn("leave broadcast incomplete; peers will detect the failure instead", "err", leaveErr)
	} else {
		m.log.Info("left the cluster")
	}
	return errors.Join(leaveErr, m.Shutdown())
}

// Shutdown stops gossip without saying goodbye. Peers see a crash and drop
// the node after failure detection (FailureDetectionTime). It waits for the
// rebuild and rejoin loops to stop. A join already in flight is abandoned.
// It returns at most TCPTimeout later. Repeat calls return the first
// result.
func (m *Membership) Shutdown() error {
	m.closeOnce.Do(func() {
		m.stop()
		if err := m.ml.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("ring: shutdown: %w", err)
		}
		m.wg.Wait()
	})
	return m.closeErr
}

// FailureDetectionTime estimates the longest time, with the current cluster
// size n, from a node crashing to its removal from every peer's View:
//
//	(n-1)*ProbeInterval      until a peer's round-robin probe reaches it
//	+ ProbeInterval          the failed probe, with indirect probes
//	+ suspicion timeout      SuspicionMaxTimeoutMult * SuspicionMult *
//	                         max(1, log10(n)) * ProbeInterval. It is the
//	                         minimum (without the max multiplier) when too
//	                         few peers exist to confirm a suspicion, as
//	                         memberlist does.
//	+ dissemination          GossipInterval * RetransmitMult * ceil(log10(n+1))
//
// The bound is conservative. In practice, when peers confirm the suspicion,
// a crash is detected in about the suspicion minimum plus a few probe
// intervals. With the local profile and 3 nodes, the bound is 21.2 s and
// the measured time was ~5 s (TestMembershipCrashAndRestart). On LAN with
// 3-10 nodes, expect roughly 6-10 s. The bound leaves out memberlist's
// awareness back-off (a node with local health problems probes up to 8x
// slower) and the rebuild time.
func (m *Membership) FailureDetectionTime() time.Duration {
	return m.failureDetectionTime(m.ml.NumMembers())
}

func (m *Membership) failureDetectionTime(n int) time.Duration {
	n = max(n, 1)
	probeCycle := m.probeInterval * time.Duration(max(n-1, 1))
	nodeScale := math.Max(1, math.Log10(float64(n)))
	suspicion := time.Duration(float64(m.suspicionMult) * nodeScale * float64(m.probeInterval))
	// Same rule as memberlist's suspectNode: with k expected confirmations
	// the timer starts at max and only shrinks as confirmations arrive.
	if k := m.suspicionMult - 2; k >= 1 && n-2 >= k {
		suspicion *= time.Duration(m.suspicionMaxMult)
	}
	retransmits := m.retransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	dissemination := m.gossipInterval * time.Duration(retransmits)
	return probeCycle + m.probeInterval + suspicion + dissemination
}

// poke asks the rebuild loop to rebuild. It never blocks.
func (m *Membership) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Membership) rebuildLoop() {
	defer m.wg.Done()
	if m.onChange != nil {
		m.onChange(m.view.Load())
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		}
		m.rebuild()
	}
}

// rebuild publishes a new View if the set of placed members changed. Only
// the rebuild loop calls it, so loads and stores of m.view do not race with
// other writers.
func (m *Membership) rebuild() {
	m.mu.Lock()
	members := make([]Member, 0, len(m.peers)+1)
	members = append(members, m.self)
	for _, p := range m.peers {
		if p.ok {
			members = append(members, p.member)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })

	cur := m.view.Load()
	if slices.Equal(members, cur.Placement.members) {
		return
	}
	start := time.Now()
	pl, err := NewPlacement(m.cfg, members)
	if err != nil {
		// Every member was validated on the way in, so this is a bug.
		// Keep the old view rather than publish a wrong one.
		m.log.Error("rebuild placement; keeping previous view", "err", err)
		return
	}
	v := &View{Epoch: cur.Epoch + 1, Self: m.self, Placement: pl}
	m.view.Store(v)
	m.mu.Lock()
	close(m.changes)
	m.changes = make(chan struct{})
	m.mu.Unlock()

	joined, left := diffMembers(cur.Placement.members, members)
	m.log.Info("ring view changed", "epoch", v.Epoch, "members", len(members),
		"joined", joined, "left", left, "build", time.Since(start))
	if m.onChange != nil {
		m.onChange(v)
	}
}

// diffMembers returns the IDs in b but not in a, and in a but not in b. A
// member whose other fields changed is listed in both. Both slices are
// sorted by ID.
func diffMembers(a, b []Member) (added, removed []string) {
	in := func(ms []Member, x Member) bool {
		_, found := slices.BinarySearchFunc(ms, x, func(e, t Member) int {
			if c := cmp.Compare(e.ID, t.ID); c != 0 {
				return c
			}
			if e == t {
				return 0
			}
			return -1 // same ID, different fields: not found
		})
		return found
	}
	for _, x := range b {
		if !in(a, x) {
			added = append(added, x.ID)
		}
	}
	for _, x := range a {
		if !in(b, x) {
			removed = append(removed, x.ID)
		}
	}
	return added, removed
}

// rejoinLoop joins seeds that are not current members every
// RejoinInterval ± 10%.
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	for {
		d := m.rejoin - m.rejoin/10 + rand.N(m.rejoin/5+1)
		t := time.NewTimer(d)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// A join can block on dials to blackholed seeds (up to TCPTimeout
		// each). Shutdown must not wait for that.
		joined := make(chan struct{})
		go func() {
			defer close(joined)
			m.join()
		}()
		select {
		case <-m.ctx.Done():
			return
		case <-joined:
		}
	}
}

// join resolves the seeds and joins the addresses that are not already live
// members (self included). Joining only unknown addresses keeps periodic
// rejoins cheap: in a healthy cluster they cost a DNS lookup and no traffic.
// An address of a partitioned or forgotten node is not a live member, so it
// is joined, and that heals the split.
func (m *Membership) join() {
	targets := m.joinTargets()
	if len(targets) == 0 {
		return
	}
	n, err := m.ml.Join(targets)
	switch {
	case n == 0:
		m.log.Warn("no gossip seed reachable; will retry", "seeds", targets, "retry_in", m.rejoin, "err", flattenErr(err))
	case err != nil:
		m.log.Debug("some gossip seeds unreachable", "reached", n, "tried", len(targets), "err", flattenErr(err))
	default:
		m.log.Info("joined gossip seeds", "reached", n)
	}
}

// flattenErr turns memberlist's multi-line multierror into one line.
func flattenErr(err error) string {
	if err == nil {
		return ""
	}
	if w, ok := err.(interface{ WrappedErrors() []error }); ok {
		var parts []string
		for _, e := range w.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

func (m *Membership) joinTargets() []string {
	known := make(map[string]bool)
	for _, n := range m.ml.Members() { // alive and suspect nodes, self included
		known[normalizeHostPort(n.Address())] = true
	}
	ctx, cancel := context.WithTimeout(m.ctx, resolveTimeout)
	defer cancel()

	var out []string
	seen := make(map[string]bool)
	for _, s := range m.seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = s, m.defaultSeedPort
		}
		var hosts []string
		if net.ParseIP(host) != nil {
			hosts = []string{host}
		} else {
			hosts, err = net.DefaultResolver.LookupHost(ctx, host)
			if err != nil {
				m.log.Warn("resolve gossip seed", "seed", s, "err", err)
				continue
			}
		}
		for _, h := range hosts {
			a := normalizeHostPort(net.JoinHostPort(h, port))
			if !known[a] && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// normalizeHostPort writes an IP:port address in canonical form, so that
// "::ffff:10.0.0.1" and "10.0.0.1" compare equal. Other strings pass
// through.
func normalizeHostPort(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// metaDelegate is the memberlist.Delegate: it only serves node metadata.
type metaDelegate []byte

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d) > limit {
		return nil // cannot happen: Options.Validate checks the size
	}
	return d
}
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate receives memberlist node events. memberlist holds its node
// lock while calling these methods. They must be quick and must not call
// into memberlist.
type eventDelegate Membership

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).upsertPeer(n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).upsertPeer(n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).removePeer(n) }

func (m *Membership) upsertPeer(n *memberlist.Node) {
	if n.Name == m.self.ID {
		return // self is always in the view, from Options
	}
	m.mu.Lock()
	old, had := m.peers[n.Name]
	if had && old.meta == string(n.Meta) {
		m.mu.Unlock()
		return
	}
	p := peer{meta: string(n.Meta)}
	member, err := decodeMeta(n.Name, n.Meta)
	if err == nil && member.PlacementVersion != m.self.PlacementVersion {
		err = fmt.Errorf("placement version %d, self has %d", member.PlacementVersion, m.self.PlacementVersion)
	}
	if err == nil {
		p.member, p.ok = member, true
	}
	m.peers[n.Name] = p
	m.mu.Unlock()

	if err != nil {
		m.log.Warn("excluding gossip peer from ring", "peer", n.Name, "gossip_addr", n.Address(), "err", err)
	}
	if p.ok || old.ok {
		m.poke()
	}
}

func (m *Membership) removePeer(n *memberlist.Node) {
	m.mu.Lock()
	old, had := m.peers[n.Name]
	delete(m.peers, n.Name)
	m.mu.Unlock()
	if had && old.ok {
		m.poke()
	}
}

// conflictDelegate logs two live nodes that claim the same ID.
type conflictDelegate Membership

func (c *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	c.log.Error("two gossip nodes claim the same node ID; ignoring the newer one",
		"id", existing.Name, "existing_addr", existing.Address(), "other_addr", other.Address())
}
