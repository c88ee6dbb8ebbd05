// Package ringstore owns the ring-backed object storage that JuiceFS
// clients (ringcache mounts) use for a volume's data: an implementation of
// JuiceFS v1.3.1's object.ObjectStorage whose Get of a data block goes to the
// block's owners on the ring, hedges a slow owner, and falls back to the
// origin object store, so a read succeeds whenever the origin is reachable.
// A block that neither answers is given up on after a bounded time (see
// Options.ReadBudget), however often JuiceFS retries it.
// Everything that is not a block read (writes, deletes, lists, heads and
// reads of other objects) goes to the origin unchanged.
//
// The store learns the ring from the cache node on its own host, polling its
// Status; when that node is down it keeps its last view, and with no view at
// all it reads from the origin.
package ringstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Stats counts a store's reads by where their bytes came from.
type Stats struct {
	LocalReads, LocalBytes   int64 // served by the cache node on this host
	PeerReads, PeerBytes     int64 // served by other cache nodes
	OriginReads, OriginBytes int64 // block reads served by the origin directly
	Fallbacks                int64 // owner attempts that failed and passed the read on
	Hedges                   int64 // second requests sent because an owner was slow
	HedgesSkipped            int64 // hedges not sent: the next owner did not hold the block
	ReadTimeouts             int64 // block Gets that failed because the block's budget ran out
	ChecksumErrors           int64 // responses refused because their bytes did not match
	PassThrough              int64 // calls for other objects, sent to the origin unchanged
}

type counters struct {
	localReads, localBytes, peerReads, peerBytes, originReads, originBytes,
	fallbacks, hedges, hedgesSkipped, readTimeouts, checksumErrors, passThrough atomic.Int64
}

// view is an immutable ring view with a client per member.
type view struct {
	epoch uint64
	// self is the local node's address as the ring knows it (the address
	// it advertises), which may differ from Options.LocalNode (a mount
	// names its node 127.0.0.1:9700, the ring knows it by its pod IP).
	self      string
	placement *ring.Placement
	clients   map[string]*peer.Client // by peer address
}

// Store is the ring-backed object storage of one volume.
type Store struct {
	object.ObjectStorage // the origin: every call not overridden goes there

	o       Options
	log     *slog.Logger
	local   *peer.Client
	view    atomic.Pointer[view]
	mu      sync.Mutex // guards clients
	clients map[string]*peer.Client
	lat     *latencies
	budgets *budgets
	reads   atomic.Int64
	c       counters
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a store and starts refreshing its ring view. It does not
// wait for the local node: until a view arrives, reads go to the origin.
func New(o Options) (*Store, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("ring storage: %w", err)
	}
	local, err := peer.Dial(o.LocalNode, peer.ClientOptions{Token: o.Token, AcceptS2: true, GRPCReads: o.GRPCReads})
	if err != nil {
		return nil, err
	}
	s := &Store{
		ObjectStorage: o.Origin, o: o, log: o.Logger, local: local,
		clients: map[string]*peer.Client{o.LocalNode: local},
		lat:     newLatencies(256), budgets: newBudgets(o.ReadBudget, o.ProbeTimeout, o.RetryWindow, o.Clock),
		done: make(chan struct{}),
	}
	if o.Registerer != nil {
		if err = registerMetrics(o.Registerer, s); err != nil {
			local.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.refresh(ctx)
	go s.refreshLoop(ctx)
	return s, nil
}

// String describes the store without secrets.
func (s *Store) String() string {
	return fmt.Sprintf("ringcache://%s/(origin %s)", s.o.LocalNode, s.o.Origin)
}

// Shutdown stops the refresh loop and closes connections.
func (s *Store) Shutdown() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		c.Close()
	}
	object.Shutdown(s.o.Origin)
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		LocalReads: s.c.localReads.Load(), LocalBytes: s.c.localBytes.Load(),
		PeerReads: s.c.peerReads.Load(), PeerBytes: s.c.peerBytes.Load(),
		OriginReads: s.c.originReads.Load(), OriginBytes: s.c.originBytes.Load(),
		Fallbacks: s.c.fallbacks.Load(), Hedges: s.c.hedges.Load(),
		HedgesSkipped: s.c.hedgesSkipped.Load(), ReadTimeouts: s.c.readTimeouts.Load(),
		ChecksumErrors: s.c.checksumErrors.Load(), PassThrough: s.c.passThrough.Load(),
	}
}

// Members returns the peer addresses in the current view (for probes and
// status).
func (s *Store) Members() []string {
	v := s.view.Load()
	if v == nil {
		return nil
	}
	var out []string
	for _, m := range v.placement.Members() {
		out = append(out, m.Addr)
	}
	return out
}

func (s *Store) refreshLoop(ctx context.Context) {
	defer close(s.done)
	t := s.o.Clock.NewTicker(s.o.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.refresh(ctx)
		}
	}
}

// refresh asks the local node for its ring and swaps the view when it
// changed. On error the last view stays.
func (s *Store) refresh(ctx context.Context) {
	// A bound on one RPC, on the real clock like every deadline the peer
	// client passes on.
	cctx, cancel := context.WithTimeout(ctx, max(s.o.RefreshInterval, time.Second))
	defer cancel()
	st, err := s.local.Status(cctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("ring view refresh failed, keeping the last view", "node", s.o.LocalNode, "err", err)
		}
		return
	}
	old := s.view.Load()
	members := peer.StatusMembers(st)
	if old != nil && old.self == st.Addr && sameMembers(old.placement.Members(), members) {
		return
	}
	p, err := peer.StatusPlacement(st)
	if err != nil {
		s.log.Warn("cannot build placement from the local node's view", "err", err)
		return
	}
	v := &view{self: st.Addr, placement: p, clients: map[string]*peer.Client{}}
	if old != nil {
		v.epoch = old.epoch + 1
	}
	s.mu.Lock()
	for _, m := range members {
		if m.Addr == st.Addr {
			v.clients[m.Addr] = s.local // the local node, under its ring address
			continue
		}
		c, ok := s.clients[m.Addr]
		if !ok {
			if c, err = peer.Dial(m.Addr, peer.ClientOptions{Token: s.o.Token, AcceptS2: true, GRPCReads: s.o.GRPCReads}); err != nil {
				s.log.Warn("dial peer", "addr", m.Addr, "err", err)
				continue
			}
			s.clients[m.Addr] = c
		}
		v.clients[m.Addr] = c
	}
	// Close connections to nodes that left; a read still holding the old
	// view gets an error from them and falls back.
	for addr, c := range s.clients {
		if _, ok := v.clients[addr]; !ok && c != s.local {
			c.Close()
			delete(s.clients, addr)
		}
	}
	s.mu.Unlock()
	s.view.Store(v)
	s.log.Info("ring view updated", "members", len(members), "node_epoch", st.RingEpoch)
}

func sameMembers(a, b []ring.Member) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[ring.Member]bool, len(a))
	for _, m := range a {
		set[m] = true
	}
	for _, m := range b {
		if !set[m] {
			return false
		}
	}
	return true
}
