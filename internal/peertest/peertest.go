// Package peertest owns the in-process cluster unit tests run against:
// N real peer servers (pkg/peer) over real caches (pkg/cache) and block
// stores in t.TempDir(), one counting fake origin, the ring placement the
// servers report in Status, and cleanup through t.Cleanup. Tests of
// pkg/cache, pkg/prefetch and pkg/juice/ringstore use it; pkg/peer's own
// tests cannot (this package imports it) and test the wire against a
// fake cache.
package peertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/cache"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Defaults of Options.
const (
	DefaultToken          = "peertest-cluster-token"
	DefaultVolume         = "models"
	DefaultVolumeUUID     = "uuid-1"
	DefaultBlockSize      = 4 << 20
	DefaultCapacity       = 1 << 30
	DefaultPartitionCount = 271
	DefaultGrace          = 100 * time.Millisecond
)

// Options configures a Cluster. Zero fields take their defaults.
type Options struct {
	// Nodes is how many nodes Start starts, all ring members (default 0:
	// the test adds them with AddNode).
	Nodes int
	// Token is the cluster token (default DefaultToken).
	Token string
	// Volume and VolumeUUID name the one volume (defaults DefaultVolume,
	// DefaultVolumeUUID); Storage is its storage type for Status
	// (default "").
	Volume, VolumeUUID, Storage string
	// Origin is the nodes' origin (default: the cluster's counting
	// Origin).
	Origin cache.Origin
	// Capacity is each node's block store capacity (default
	// DefaultCapacity).
	Capacity int64
	// NodeID names the i-th node added (0-based; default "node-<i+1>").
	NodeID func(i int) string
	// WrapStore, if set, wraps each node's block store before the cache
	// uses it (to slow it down, say).
	WrapStore func(*blockstore.Store) cache.Store
	// Cache and Server, if set, adjust each node's options.
	Cache  func(*cache.Options)
	Server func(*peer.ServerOptions)
	// Grace is how long a stopped node lets calls finish (default
	// DefaultGrace).
	Grace time.Duration
	// PartitionCount is the ring's (default DefaultPartitionCount).
	PartitionCount int
}

func (o *Options) ensureDefaults() {
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.Volume == "" {
		o.Volume = DefaultVolume
	}
	if o.VolumeUUID == "" {
		o.VolumeUUID = DefaultVolumeUUID
	}
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.NodeID == nil {
		o.NodeID = func(i int) string { return fmt.Sprintf("node-%d", i+1) }
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.PartitionCount == 0 {
		o.PartitionCount = DefaultPartitionCount
	}
}

// Cluster is the nodes of one test over one origin.
type Cluster struct {
	T      testing.TB
	O      Options
	Origin *Origin // the counting origin (unused when Options.Origin is set)
	Nodes  []*Node

	placement atomic.Pointer[ring.Placement]
	epoch     atomic.Uint64
}

// Start starts o.Nodes nodes and makes them the ring's members.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	o.ensureDefaults()
	c := &Cluster{T: t, O: o, Origin: NewOrigin()}
	if c.O.Origin == nil {
		c.O.Origin = c.Origin
	}
	var ms []ring.Member
	for range o.Nodes {
		ms = append(ms, c.AddNode(true).Member)
	}
	if len(ms) > 0 {
		c.SetMembers(ms...)
	}
	return c
}

// Node is one in-process cache node: a block store, a cache and a peer
// server that can be stopped and started again on the same address.
type Node struct {
	c          *Cluster
	Member     ring.Member
	Addr       string
	Store      *blockstore.Store
	CacheStore cache.Store // what the cache uses: Store, or Options.WrapStore's wrapper
	Cache      *cache.Cache
	Server     *peer.Server
	Client     *peer.Client // a data-plane client that accepts s2

	mu   sync.Mutex
	stop func() // nil while down
}

// AddNode adds a node that is not yet a ring member; serve false leaves
// it down (its address reserved but not listening).
func (c *Cluster) AddNode(serve bool) *Node {
	t := c.T
	t.Helper()
	bs, err := blockstore.Open(context.Background(), blockstore.Options{Dir: t.TempDir(), CapacityBytes: c.O.Capacity, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{c: c, Addr: l.Addr().String(), Store: bs, CacheStore: bs}
	if c.O.WrapStore != nil {
		n.CacheStore = c.O.WrapStore(bs)
	}
	n.Member = ring.Member{ID: c.O.NodeID(len(c.Nodes)), Addr: n.Addr, Weight: 1, PlacementVersion: 1}
	co := cache.Options{
		Store: n.CacheStore,
		Volumes: []cache.Volume{{
			Volume:    peer.Volume{Name: c.O.Volume, UUID: c.O.VolumeUUID, Storage: c.O.Storage, BlockSize: DefaultBlockSize},
			ExactSize: true, Origin: c.O.Origin,
		}},
	}
	if c.O.Cache != nil {
		c.O.Cache(&co)
	}
	if n.Cache, err = cache.New(co); err != nil {
		t.Fatal(err)
	}
	so := peer.ServerOptions{Cache: n.Cache, Token: []byte(c.O.Token), View: n.view}
	if c.O.Server != nil {
		c.O.Server(&so)
	}
	if n.Server, err = peer.NewServer(so); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Down)
	if serve {
		n.serve(l)
	} else {
		l.Close()
	}
	if n.Client, err = peer.Dial(n.Addr, peer.ClientOptions{Token: []byte(c.O.Token), AcceptS2: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Client.Close() })
	c.Nodes = append(c.Nodes, n)
	return n
}

func (n *Node) view() *ring.View {
	p := n.c.placement.Load()
	if p == nil {
		return nil
	}
	return &ring.View{Epoch: n.c.epoch.Load(), Self: n.Member, Placement: p}
}

func (n *Node) serve(l net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Server.Serve(ctx, l, n.c.O.Grace); close(done) }()
	n.mu.Lock()
	n.stop = func() { cancel(); <-done }
	n.mu.Unlock()
}

// Up starts serving again on the node's address.
func (n *Node) Up() {
	n.c.T.Helper()
	l, err := net.Listen("tcp", n.Addr)
	if err != nil {
		n.c.T.Fatalf("listen again on %s: %v", n.Addr, err)
	}
	n.serve(l)
}

// Down stops the server and closes its listener; idempotent.
func (n *Node) Down() {
	n.mu.Lock()
	stop := n.stop
	n.stop = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Holds reports whether the node's store holds key of the volume.
func (n *Node) Holds(key string) bool {
	_, ok := n.Store.Has(blockstore.Key{Volume: n.c.O.VolumeUUID, Object: key})
	return ok
}

// Stats are a node's server and cache counters together.
type Stats struct {
	Reads, ServedBytes, WireBytes                                                   int64 // the server's (peer.Stats)
	Hits, Misses, OriginFetches, OriginBytes, OriginErrors, DedupWaits, StoreErrors int64 // the cache's (cache.Stats)
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	ps, cs := n.Server.Stats(), n.Cache.Stats()
	return Stats{
		Reads: ps.Reads, ServedBytes: ps.ServedBytes, WireBytes: ps.WireBytes,
		Hits: cs.Hits, Misses: cs.Misses, OriginFetches: cs.OriginFetches, OriginBytes: cs.OriginBytes,
		OriginErrors: cs.OriginErrors, DedupWaits: cs.DedupWaits, StoreErrors: cs.StoreErrors,
	}
}

// NewPlacement returns the placement of ms under the cluster's ring
// parameters.
func (c *Cluster) NewPlacement(ms ...ring.Member) *ring.Placement {
	c.T.Helper()
	p, err := ring.NewPlacement(ring.Config{PartitionCount: c.O.PartitionCount}, ms)
	if err != nil {
		c.T.Fatal(err)
	}
	return p
}

// SetMembers makes ms the ring every node reports in Status.
func (c *Cluster) SetMembers(ms ...ring.Member) *ring.Placement {
	c.T.Helper()
	p := c.NewPlacement(ms...)
	c.SetPlacement(p)
	return p
}

// SetPlacement makes p the ring every node reports in Status, a new
// epoch.
func (c *Cluster) SetPlacement(p *ring.Placement) {
	c.placement.Store(p)
	c.epoch.Add(1)
}

// Placement is the ring the nodes report (nil before any).
func (c *Cluster) Placement() *ring.Placement { return c.placement.Load() }

// Node returns the node at addr.
func (c *Cluster) Node(addr string) *Node {
	c.T.Helper()
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	c.T.Fatalf("no node at %s", addr)
	return nil
}
