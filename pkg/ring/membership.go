package ring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringcache/ringcache/pkg/clock"
)

// This file is the I/O edge of the package: Start, the Membership it
// returns, and Leave and Shutdown. It owns a memberlist gossip node (its
// config in gossip.go), tracks the peers memberlist reports and publishes
// immutable Views (view.go), and keeps joining seeds (join.go).
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
//     RejoinInterval of Options.Clock.
//
// go-metrics: memberlist sends metrics to the hashicorp/go-metrics global
// sink. That is a no-op BlackholeSink unless some other code installs a
// global sink, so this package leaves the global alone.

// defaultLeaveTimeout bounds the leave broadcast when Leave's context has
// no deadline.
const defaultLeaveTimeout = 5 * time.Second

// ErrClosed is returned by Leave after Leave or Shutdown.
var ErrClosed = errors.New("ring: membership closed")

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

// Membership is a running gossip node. It publishes a View of the ring.
// Methods are safe for concurrent use.
type Membership struct {
	self     Member
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock
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
	settled   chan chan struct{} // rebuild now, then close the channel (settle)
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
	o.EnsureDefaults()
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
		clock:    o.Clock,
		onChange: o.OnChange,
		seeds:    slices.Clone(o.Seeds),
		rejoin:   o.RejoinInterval,
		peers:    make(map[string]peer),
		changes:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		settled:  make(chan chan struct{}),
		refusals: newRefusals(o.Clock),
	}
	m.ctx, m.stop = context.WithCancel(context.Background())
	m.view.Store(&View{Epoch: 1, Self: o.Self, Placement: initial})

	c, err := m.memberlistConfig(o, meta)
	if err != nil {
		m.stop()
		return nil, err
	}
	// Incoming streams limited (streamlimit.go): unauthenticated
	// connections must not grow memory with their number.
	tr, err := listenGossip(c, o.Clock, func(r Refusal, detail string) { m.refusals.refuse(m.log, r, detail) })
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
	// Real time, not m.clock: the bound is ctx's deadline, and memberlist
	// waits for the broadcast on its own real-time timer.
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
