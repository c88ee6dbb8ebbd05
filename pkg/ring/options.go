package ring

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringcache/ringcache/pkg/clock"
)

// Profile names for Options.Profile.
const (
	ProfileLAN   = "lan"   // memberlist.DefaultLANConfig: 1 s probes, 500 ms probe timeout
	ProfileLocal = "local" // memberlist.DefaultLocalConfig: 200 ms probe timeout, short suspicion; for tests
)

// Defaults of Options.
const (
	// DefaultRejoinInterval is the default Options.RejoinInterval.
	DefaultRejoinInterval = 30 * time.Second
	// DefaultBindAddr is the default Options.BindAddr.
	DefaultBindAddr = "0.0.0.0"
	// DefaultProfile is the default Options.Profile.
	DefaultProfile = ProfileLAN
)

// ErrInvalidOptions reports Options that fail validation.
var ErrInvalidOptions = errors.New("ring: invalid options")

// Options configures Start.
type Options struct {
	// Self is this node. ID is the memberlist node name; Addr is the peer
	// gRPC address (host:port) advertised in node metadata. Required.
	// Weight 0 means 1.
	Self Member
	// BindAddr is the gossip bind IP (default DefaultBindAddr, "0.0.0.0").
	BindAddr string
	// BindPort is the gossip port (TCP and UDP); 0 picks a free one, see
	// GossipAddr.
	BindPort int
	// AdvertiseAddr is the gossip IP advertised to peers, e.g. the pod IP.
	// Required when BindAddr is unspecified (0.0.0.0 or ::).
	AdvertiseAddr string
	// AdvertisePort is the gossip port advertised to peers; 0 means the
	// bound port.
	AdvertisePort int
	// Seeds are host:port of gossip seeds (default none). They may include
	// self and DNS names (all A/AAAA records are used); a missing port
	// means the local gossip port.
	Seeds []string
	// RejoinInterval is how often to join seeds that are not current
	// members, which heals partitions and finds seeds not resolvable at
	// start (default DefaultRejoinInterval, 30s).
	RejoinInterval time.Duration
	// SecretKeys are AES keys (16, 24 or 32 bytes, at most MaxKeys) that
	// encrypt and authenticate gossip; the first encrypts, all decrypt.
	// Default none: plaintext gossip that anyone can join (tests only).
	SecretKeys [][]byte
	// Profile is ProfileLAN or ProfileLocal (default DefaultProfile,
	// ProfileLAN).
	Profile string
	// Placement must be the same on all nodes with the same
	// PlacementVersion (zero fields: Config's defaults).
	Placement Config
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Clock schedules the rejoin loop and times the gossip stream waits and
	// the refusal log (default clock.Real()). memberlist
	// keeps its own real-time timers (probes, suspicion, gossip).
	Clock clock.Clock
	// OnChange is optional. It is called from one goroutine, first with
	// the initial view, then after each swap; it must not call Leave or
	// Shutdown.
	OnChange func(*View)
}

// EnsureDefaults sets every zero optional field of o to its default,
// including those of o.Placement.
func (o *Options) EnsureDefaults() {
	if o.Self.Weight == 0 {
		o.Self.Weight = 1
	}
	if o.BindAddr == "" {
		o.BindAddr = DefaultBindAddr
	}
	if o.RejoinInterval == 0 {
		o.RejoinInterval = DefaultRejoinInterval
	}
	if o.Profile == "" {
		o.Profile = DefaultProfile
	}
	o.Placement.EnsureDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o as EnsureDefaults would leave it (a zero optional
// field stands for its default); it does not modify o. It reports every
// problem at once. Errors wrap ErrInvalidOptions, and also ErrInvalidMember
// for Self and ErrInvalidConfig for Placement.
func (o *Options) Validate() error {
	c := *o
	c.EnsureDefaults()
	var errs []error
	if err := c.Self.validate(); err != nil {
		errs = append(errs, fmt.Errorf("self: %w", err))
	}
	if c.Self.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Self.Addr); err != nil {
			errs = append(errs, fmt.Errorf("self addr %q: %w", c.Self.Addr, err))
		}
	}
	if meta, err := encodeMeta(c.Self); err != nil {
		errs = append(errs, fmt.Errorf("encode metadata: %w", err))
	} else if len(meta) > memberlist.MetaMaxSize {
		errs = append(errs, fmt.Errorf("node metadata is %d bytes, limit %d (shorten ID or Addr)", len(meta), memberlist.MetaMaxSize))
	}

	if bindIP := net.ParseIP(c.BindAddr); bindIP == nil {
		errs = append(errs, fmt.Errorf("bind addr %q is not an IP", c.BindAddr))
	} else if c.AdvertiseAddr == "" && bindIP.IsUnspecified() {
		errs = append(errs, fmt.Errorf("advertise addr is required when binding to %s", c.BindAddr))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("advertise addr %q is not an IP", c.AdvertiseAddr))
	}
	if c.BindPort < 0 || c.BindPort > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("bind port %d out of range", c.BindPort))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("advertise port %d out of range", c.AdvertisePort))
	}
	for _, s := range c.Seeds {
		if s == "" {
			errs = append(errs, errors.New("empty seed"))
			break
		}
	}
	if c.RejoinInterval < 0 {
		errs = append(errs, fmt.Errorf("negative rejoin interval %v", c.RejoinInterval))
	}
	if len(c.SecretKeys) > MaxKeys {
		errs = append(errs, fmt.Errorf("%d secret keys, at most %d", len(c.SecretKeys), MaxKeys))
	}
	for i, k := range c.SecretKeys {
		switch len(k) {
		case 16, 24, 32:
		default:
			errs = append(errs, fmt.Errorf("secret key %d must be 16, 24 or 32 bytes, got %d", i+1, len(k)))
			continue
		}
		for _, prev := range c.SecretKeys[:i] {
			if bytes.Equal(prev, k) {
				errs = append(errs, fmt.Errorf("secret key %d repeats an earlier one", i+1))
				break
			}
		}
	}
	switch c.Profile {
	case ProfileLAN, ProfileLocal:
	default:
		errs = append(errs, fmt.Errorf("unknown profile %q (want %q or %q)", c.Profile, ProfileLAN, ProfileLocal))
	}
	if err := c.Placement.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("placement: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}
