package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// VolumeSource names a JuiceFS volume and where its metadata engine is.
// The URL may hold a password: it is never logged.
type VolumeSource struct {
	Name    string
	MetaURL string
}

// Defaults of Options.
const (
	DefaultMinFreeBytes     = 1 << 30
	DefaultPeerListen       = ":9700"
	DefaultGossipListen     = ":9701"
	DefaultHTTPListen       = ":9702"
	DefaultGossipProfile    = "lan"
	DefaultPlacementVersion = 1
	DefaultShutdownGrace    = 10 * time.Second
	// HTTPOff as HTTPListen disables the HTTP endpoints.
	HTTPOff = "off"
)

// Options configures a Node. Zero values take the documented defaults.
type Options struct {
	// DataDir holds the blocks and the node's persisted ID. Required.
	DataDir string
	// NodeID is the stable ID of this node on the ring. Default: read from
	// DataDir/node-id, generated there on first start, so a restarted node
	// takes back its place.
	NodeID string
	// CapacityBytes bounds the cached block bytes. Required.
	CapacityBytes int64
	// MinFreeBytes is the free-space floor of DataDir's file system
	// (default DefaultMinFreeBytes, 1 GiB).
	MinFreeBytes int64
	// Weight is the node's capacity weight on the ring, 1..8 (default:
	// one per started 256 GiB of capacity).
	Weight int
	// PeerListen is the peer gRPC listen address (default ":9700").
	PeerListen string
	// GossipListen is the memberlist bind address (default ":9701").
	GossipListen string
	// HTTPListen serves /metrics, /healthz and /readyz (default ":9702",
	// which "" also means; HTTPOff, "off", disables them).
	HTTPListen string
	// AdvertiseAddr is the IP other nodes reach this one at. Default: the
	// host of PeerListen when it is not a wildcard.
	AdvertiseAddr string
	// Seeds are gossip addresses (host:port) of other nodes.
	Seeds []string
	// GossipProfile is "lan" (default) or "local" (fast failure
	// detection, for tests on one machine).
	GossipProfile string
	// Token is the cluster token that every peer call carries. Mounts, CSI
	// plugins and controllers hold it too, so it never keys gossip.
	// Required.
	Token []byte
	// GossipKeys encrypt and authenticate gossip: only cache nodes hold
	// them, so a process with just the token cannot join the ring and
	// claim partitions. The first key encrypts, all decrypt (rotation).
	// Required: 1..ring.MaxKeys keys of ring.KeySize bytes, none derived
	// from or equal to the token (ring.LoadKeyFile reads them).
	GossipKeys [][]byte
	// Volumes the node serves. At least one.
	Volumes []VolumeSource
	// OriginConcurrency bounds concurrent origin fetches (default
	// cache.DefaultOriginConcurrency, 16).
	OriginConcurrency int
	// OriginBandwidth caps origin bytes per second (default 0: none).
	OriginBandwidth int64
	// Placement are the ring parameters; they must be equal cluster-wide.
	Placement ring.Config
	// PlacementVersion tags Placement; nodes with another version form
	// another ring (default 1).
	PlacementVersion int
	// ShutdownGrace bounds the wait for in-flight calls on shutdown
	// (default 10s).
	ShutdownGrace time.Duration
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registry receives metrics (default: a new registry).
	Registry *prometheus.Registry
	// Clock times the startup log and is handed to the cache and the
	// peer server (default clock.Real()).
	Clock clock.Clock
}

const weightUnit = 256 << 30

// EnsureDefaults sets every zero-valued optional field to its default.
func (o *Options) EnsureDefaults() {
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.Weight == 0 {
		o.Weight = int(min(max((o.CapacityBytes+weightUnit-1)/weightUnit, 1), ring.MaxWeight))
	}
	if o.PeerListen == "" {
		o.PeerListen = DefaultPeerListen
	}
	if o.GossipListen == "" {
		o.GossipListen = DefaultGossipListen
	}
	if o.HTTPListen == "" {
		o.HTTPListen = DefaultHTTPListen
	}
	if o.GossipProfile == "" {
		o.GossipProfile = DefaultGossipProfile
	}
	if o.PlacementVersion == 0 {
		o.PlacementVersion = DefaultPlacementVersion
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o; the errors are joined, each on its own line.
func (o *Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if o.CapacityBytes <= 0 {
		errs = append(errs, errors.New("capacity must be positive"))
	}
	if o.MinFreeBytes < 0 {
		errs = append(errs, errors.New("min free must not be negative"))
	}
	if o.Weight < 1 || o.Weight > ring.MaxWeight {
		errs = append(errs, fmt.Errorf("weight must be 1..%d", ring.MaxWeight))
	}
	if err := peer.ValidateToken(o.Token); err != nil {
		errs = append(errs, err)
	}
	if err := validateGossipKeys(o.GossipKeys, o.Token); err != nil {
		errs = append(errs, err)
	}
	if len(o.Volumes) == 0 {
		errs = append(errs, errors.New("at least one volume is required"))
	}
	for _, v := range o.Volumes {
		if v.Name == "" || v.MetaURL == "" {
			errs = append(errs, fmt.Errorf("volume %q needs a name and a metadata url", v.Name))
		}
	}
	if o.OriginConcurrency < 0 || o.OriginBandwidth < 0 {
		errs = append(errs, errors.New("origin concurrency and bandwidth must not be negative"))
	}
	if err := o.Placement.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
