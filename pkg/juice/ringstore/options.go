package ringstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/juicedata/juicefs/pkg/object"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer"
)

// Defaults of Options.
const (
	DefaultOwners          = 2
	DefaultAttemptTimeout  = 30 * time.Second
	DefaultReadBudget      = 15 * time.Second
	DefaultProbeTimeout    = 200 * time.Millisecond
	DefaultHedgeMin        = 200 * time.Millisecond
	DefaultHedgeMax        = 5 * time.Second
	DefaultHedgeFactor     = 3
	DefaultHedgeBudget     = 0.1
	DefaultRefreshInterval = time.Second
)

// Options configures a Store.
type Options struct {
	// Origin is the volume's real object store, without the volume-name
	// prefix (JuiceFS adds it above this store). Required.
	Origin object.ObjectStorage
	// LocalNode is the peer address of the cache node on this host. Required.
	LocalNode string
	// Token is the cluster token. Required.
	Token []byte
	// Volume is the volume's UUID. Required.
	Volume string
	// Prefix is the volume's key prefix, "<format name>/". Required.
	Prefix string
	// Owners is how many ranked owners a read tries before the origin
	// (default DefaultOwners, 2).
	Owners int
	// AttemptTimeout bounds one owner's answer, including a cold fetch it
	// makes from the origin (default DefaultAttemptTimeout, 30s), within
	// ReadBudget.
	AttemptTimeout time.Duration
	// ReadBudget bounds the time spent on one block, every candidate
	// included, from the first Get of it that did not succeed: JuiceFS
	// retries a failed block read (--io-retries), and its retries share
	// the first one's budget instead of starting again (default
	// DefaultReadBudget, 15s).
	ReadBudget time.Duration
	// ProbeTimeout bounds each Get of a block whose budget is spent, for
	// RetryWindow after that: a probe that succeeds (the origin is back)
	// ends the failure; one that does not fails fast (default
	// DefaultProbeTimeout, 200ms).
	ProbeTimeout time.Duration
	// RetryWindow is how long a block whose budget is spent gets probes
	// only; the first Get after it starts a new budget (default
	// 2 x ReadBudget).
	RetryWindow time.Duration
	// HedgeMin and HedgeMax clamp the hedging delay (default
	// DefaultHedgeMin and DefaultHedgeMax, 200ms and 5s). The delay is
	// HedgeFactor (default DefaultHedgeFactor, 3) times the 95th
	// percentile of the last 256 owner latencies. A hedge that reaches an
	// owner without the block costs an origin fetch, so the delay errs on
	// the late side.
	HedgeMin, HedgeMax time.Duration
	HedgeFactor        float64
	// HedgeBudget is the largest fraction of reads that may be hedged
	// (default DefaultHedgeBudget, 0.1; negative disables hedging), so a
	// slow ring does not double the load on the origin.
	HedgeBudget float64
	// GRPCReads reads blocks over the peer protocol's gRPC stream instead
	// of the faster data plane beside it (for networks that pass only
	// HTTP/2 between nodes). Default false.
	GRPCReads bool
	// RefreshInterval is how often the ring view is refreshed from the
	// local node (default DefaultRefreshInterval, 1s).
	RefreshInterval time.Duration
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registerer receives metrics (default none: not registered).
	Registerer prometheus.Registerer
	// Clock times the hedges, the view refreshes and the block budgets
	// (default clock.Real()). The budget's deadline, taken from Clock.Now,
	// becomes the context deadline of the block's requests, which the
	// runtime and the peer enforce in real time.
	Clock clock.Clock
}

// EnsureDefaults sets every zero optional field of o to its default.
func (o *Options) EnsureDefaults() {
	if o.Owners == 0 {
		o.Owners = DefaultOwners
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.HedgeMin == 0 {
		o.HedgeMin = DefaultHedgeMin
	}
	if o.HedgeMax == 0 {
		o.HedgeMax = DefaultHedgeMax
	}
	if o.HedgeFactor == 0 {
		o.HedgeFactor = DefaultHedgeFactor
	}
	if o.HedgeBudget == 0 {
		o.HedgeBudget = DefaultHedgeBudget
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.ReadBudget == 0 {
		o.ReadBudget = DefaultReadBudget
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.RetryWindow == 0 {
		o.RetryWindow = 2 * o.ReadBudget
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o as EnsureDefaults would leave it (a zero optional
// field stands for its default); it does not modify o. It reports every
// problem at once.
func (o *Options) Validate() error {
	c := *o
	c.EnsureDefaults()
	var errs []error
	if c.Origin == nil {
		errs = append(errs, errors.New("origin is required"))
	}
	if c.LocalNode == "" {
		errs = append(errs, errors.New("local node address is required"))
	}
	if err := peer.ValidateToken(c.Token); err != nil {
		errs = append(errs, err)
	}
	if c.Volume == "" || c.Prefix == "" || !strings.HasSuffix(c.Prefix, "/") {
		errs = append(errs, errors.New(`volume uuid and a prefix ending in "/" are required`))
	}
	if c.Owners < 1 || c.AttemptTimeout < 0 || c.HedgeMin < 0 || c.HedgeMax < c.HedgeMin || c.HedgeFactor < 1 || c.HedgeBudget > 1 || c.RefreshInterval < 0 {
		errs = append(errs, errors.New("owners >= 1, non-negative timeouts, hedge min <= max, hedge factor >= 1 and a hedge budget <= 1 are required"))
	}
	if c.ReadBudget < 0 || c.ProbeTimeout < 0 || c.RetryWindow < 0 {
		errs = append(errs, errors.New("read budget, probe timeout and retry window must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("ringstore: invalid options: %w", errors.Join(errs...))
	}
	return nil
}
