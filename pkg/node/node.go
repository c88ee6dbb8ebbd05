// Package node assembles a ringcache cache node: the block store on local
// NVMe, ring membership over gossip, the volumes' origins, the cache over
// them (pkg/cache), the peer server in front of it (pkg/peer) and the HTTP
// endpoints for metrics and health. cmd/cachenode turns flags into
// Options and runs one node per process; internal/cluster and the e2e
// tests start cachenode processes, and unit tests run in-process caches
// and servers without a node (internal/peertest).
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/cache"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Node is a running cache node.
type Node struct {
	o          Options
	log        *slog.Logger
	store      *blockstore.Store
	volumes    []*juice.Volume
	membership *ring.Membership
	cache      *cache.Cache
	server     *peer.Server
	peerLn     net.Listener
	httpSrv    *http.Server
	httpLn     net.Listener
	ready      atomic.Bool
	done       chan struct{}
	serveErr   chan error
	cancel     context.CancelFunc
}

// Start opens the store, loads the volumes, starts the peer server and
// joins the ring. The node runs until Shutdown.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid options: %w", err)
	}
	n := &Node{o: o, log: o.Logger, done: make(chan struct{}), serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	if n.o.NodeID == "" {
		if n.o.NodeID, err = loadNodeID(o.DataDir); err != nil {
			return nil, err
		}
	}
	start := o.Clock.Now()
	n.store, err = blockstore.Open(ctx, blockstore.Options{
		Dir: filepath.Join(o.DataDir, "store"), CapacityBytes: o.CapacityBytes,
		MinFreeBytes: o.MinFreeBytes, Logger: o.Logger.With("component", "blockstore"),
	})
	if err != nil {
		return nil, fmt.Errorf("open block store: %w", err)
	}
	st := n.store.Stats()
	n.log.Info("block store open", "blocks", st.Blocks, "bytes", st.Bytes, "capacity", st.CapacityBytes, "took", o.Clock.Now().Sub(start).Round(time.Millisecond))

	var cvols []cache.Volume
	for _, src := range o.Volumes {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := juice.OpenVolume(lctx, src.Name, src.MetaURL)
		cancel()
		if err != nil {
			return nil, err
		}
		n.volumes = append(n.volumes, v)
		cvols = append(cvols, cache.Volume{
			Volume:    peer.Volume{Name: v.Name, UUID: v.UUID, Storage: v.Storage, BlockSize: v.BlockSize},
			ExactSize: (v.Compression == "" || v.Compression == "none") && !v.Encrypted,
			Origin:    v,
		})
		n.log.Info("volume loaded", "volume", v.Name, "uuid", v.UUID, "storage", v.Storage, "block_size", v.BlockSize, "compression", v.Compression, "encrypted", v.Encrypted)
	}

	if n.peerLn, err = net.Listen("tcp", o.PeerListen); err != nil {
		return nil, fmt.Errorf("peer listen: %w", err)
	}
	if o.HTTPListen != HTTPOff {
		if n.httpLn, err = net.Listen("tcp", o.HTTPListen); err != nil {
			return nil, fmt.Errorf("http listen: %w", err)
		}
	}
	advertise, err := advertiseHost(o.AdvertiseAddr, o.PeerListen)
	if err != nil {
		return nil, err
	}
	peerPort := n.peerLn.Addr().(*net.TCPAddr).Port
	self := ring.Member{
		ID: n.o.NodeID, Addr: net.JoinHostPort(advertise, fmt.Sprint(peerPort)),
		Weight: o.Weight, PlacementVersion: o.PlacementVersion,
	}
	ghost, gport, err := splitHostPort(o.GossipListen)
	if err != nil {
		return nil, fmt.Errorf("gossip listen: %w", err)
	}
	n.membership, err = ring.Start(ctx, ring.Options{
		Self: self, BindAddr: ghost, BindPort: gport, AdvertiseAddr: advertise,
		Seeds: o.Seeds, SecretKeys: o.GossipKeys, Profile: o.GossipProfile,
		Placement: o.Placement, Logger: o.Logger.With("component", "ring"),
		OnChange: func(v *ring.View) {
			n.log.Info("ring changed", "epoch", v.Epoch, "members", v.Placement.Len())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("join ring: %w", err)
	}

	n.cache, err = cache.New(cache.Options{
		Store: n.store, Volumes: cvols,
		OriginConcurrency: o.OriginConcurrency, OriginBandwidth: o.OriginBandwidth,
		Logger: o.Logger.With("component", "peer"), Registerer: o.Registry, Clock: o.Clock,
	})
	if err != nil {
		return nil, err
	}
	n.server, err = peer.NewServer(peer.ServerOptions{
		Cache: n.cache, Token: o.Token, View: n.membership.View,
		Logger: o.Logger.With("component", "peer"), Registerer: o.Registry, Clock: o.Clock,
	})
	if err != nil {
		return nil, err
	}
	if err := n.registerMetrics(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	go func() { n.serveErr <- n.server.Serve(sctx, n.peerLn, o.ShutdownGrace) }()
	if n.httpLn != nil {
		n.httpSrv = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.serveErr <- err
			}
		}()
	}
	n.ready.Store(true)
	n.log.Info("cache node serving", "node_id", self.ID, "peer_addr", self.Addr, "gossip_addr", n.membership.GossipAddr(), "http_addr", n.HTTPAddr(), "weight", self.Weight, "failure_detection", n.membership.FailureDetectionTime())
	return n, nil
}

// PeerAddr is the advertised peer address.
func (n *Node) PeerAddr() string { return n.membership.View().Self.Addr }

// GossipAddr is the gossip address other nodes can use as a seed.
func (n *Node) GossipAddr() string { return n.membership.GossipAddr() }

// HTTPAddr is the metrics and health address, or "" when disabled.
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// ID is the node's ring ID.
func (n *Node) ID() string { return n.o.NodeID }

// View is the node's current ring view.
func (n *Node) View() *ring.View { return n.membership.View() }

// Server is the node's peer server.
func (n *Node) Server() *peer.Server { return n.server }

// Cache is the node's block cache.
func (n *Node) Cache() *cache.Cache { return n.cache }

// Store is the node's block store.
func (n *Node) Store() *blockstore.Store { return n.store }

// Wait blocks until the node fails or ctx is done.
func (n *Node) Wait(ctx context.Context) error {
	select {
	case err := <-n.serveErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Shutdown leaves the ring, stops serving after in-flight calls finish
// (bounded by ShutdownGrace) and closes the store.
func (n *Node) Shutdown(ctx context.Context) error {
	n.ready.Store(false)
	var errs []error
	if n.membership != nil {
		if err := n.membership.Leave(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leave ring: %w", err))
		}
	}
	if n.cancel != nil {
		n.cancel()
		if err := <-n.serveErr; err != nil {
			errs = append(errs, err)
		}
	}
	n.closeAll()
	n.log.Info("cache node stopped")
	return errors.Join(errs...)
}

func (n *Node) closeAll() {
	if n.httpSrv != nil {
		n.httpSrv.Close()
	} else if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.cancel == nil && n.peerLn != nil {
		n.peerLn.Close()
	}
	if n.membership != nil && n.cancel == nil {
		n.membership.Shutdown()
	}
	for _, v := range n.volumes {
		v.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.o.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok: %d ring members\n", n.membership.View().Placement.Len())
	})
	return mux
}

func (n *Node) registerMetrics() error {
	reg := n.o.Registry
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	st := func() blockstore.Stats { return n.store.Stats() }
	cs := []prometheus.Collector{
		gauge("ringcache_store_bytes", "Block bytes held in the store.", func() float64 { return float64(st().Bytes) }),
		gauge("ringcache_store_blocks", "Blocks held in the store.", func() float64 { return float64(st().Blocks) }),
		gauge("ringcache_store_capacity_bytes", "Configured store capacity.", func() float64 { return float64(st().CapacityBytes) }),
		counter("ringcache_store_evictions_total", "Blocks evicted to stay within capacity or the free-space floor.", func() float64 { return float64(st().Evictions) }),
		counter("ringcache_store_corrupt_total", "Blocks found corrupt on read or at start and dropped.", func() float64 { return float64(st().Corrupt) }),
		counter("ringcache_store_read_errors_total", "Block reads that failed with an I/O error (served as misses).", func() float64 { return float64(st().ReadErrors) }),
		counter("ringcache_store_write_errors_total", "Block writes that failed.", func() float64 { return float64(st().WriteErrors) }),
		gauge("ringcache_ring_members", "Members in this node's ring view.", func() float64 { return float64(n.membership.View().Placement.Len()) }),
		gauge("ringcache_ring_epoch", "Changes of this node's ring view since start.", func() float64 { return float64(n.membership.View().Epoch) }),
	}
	for _, r := range ring.Refusals {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ringcache_gossip_refused_total", ConstLabels: prometheus.Labels{"reason": string(r)},
			Help: "Incoming gossip messages refused before they were read, by reason: key (no gossip key of this node decrypts it), unencrypted, label, malformed, too_many_streams (stream closed unread: too many open), oversized (stream longer than 4 MiB before authentication).",
		}, func() float64 { return float64(n.membership.Refused(r)) }))
	}
	cs = append(cs,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// loadNodeID reads dir/node-id, creating it with a random ID on first use.
func loadNodeID(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	p := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("%s is empty", p)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	id := fmt.Sprintf("%s-%s", host, hex.EncodeToString(r[:]))
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, p, nil
}

// advertiseHost picks the IP peers reach this node at.
func advertiseHost(advertise, listen string) (string, error) {
	if advertise != "" {
		if net.ParseIP(advertise) == nil {
			return "", fmt.Errorf("advertise address %q is not an IP", advertise)
		}
		return advertise, nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return host, nil
	}
	return "", errors.New("advertise address is required when listening on all interfaces")
}
