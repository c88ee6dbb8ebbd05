package admit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/pkg/clock"
)

// Defaults of RefusalsOptions.
const (
	// DefaultInterval is the default shortest time between two log lines
	// for the same key.
	DefaultInterval = time.Minute
	// DefaultMaxKeys is the default bound on the keys rate-limited one by
	// one.
	DefaultMaxKeys = 1024
	// DefaultSuppressedAttr is the default name of the attribute that
	// says how many refusals a line stands for that were not logged.
	DefaultSuppressedAttr = "suppressed"
)

// RefusalsOptions configures Refusals. Zero values mean the defaults.
type RefusalsOptions struct {
	// Message is the message of every log line. Required.
	Message string
	// Logger receives the lines (default: discard); see also WithLogger.
	Logger *slog.Logger
	// Interval is the shortest time between two lines for one key
	// (default DefaultInterval). The key is the reason, or with ByPeer
	// the reason and the caller's host.
	Interval time.Duration
	// ByPeer keys the rate limit by reason and remote host, and logs the
	// caller's address as "peer" ("unknown" when it has none). Default
	// false: one key per reason, and no address attribute (the detail
	// carries it, if any).
	ByPeer bool
	// MaxKeys bounds the keys rate-limited one by one (default
	// DefaultMaxKeys); refusals from further hosts share one key per
	// reason, host "other". Keys whose interval is over and that stand
	// for nothing suppressed are dropped when the table is full, at most
	// once per Interval.
	MaxKeys int
	// SuppressedAttr names the attribute holding how many refusals of the
	// key were not logged before a line (default DefaultSuppressedAttr).
	SuppressedAttr string
	// Reasons are the reasons the counter shows from the start, at 0
	// (optional). Other reasons are counted from their first refusal.
	// Reasons are the caller's constants, never input from a peer.
	Reasons []string
	// Registerer receives the counter Metric{reason} (default: none; Count
	// counts all the same).
	Registerer prometheus.Registerer
	// Metric names the counter (required with a Registerer), and Help
	// describes it.
	Metric, Help string
	// Clock tells the time of refusals (default clock.Real()).
	Clock clock.Clock
}

// EnsureDefaults sets every zero optional field to its default.
func (o *RefusalsOptions) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.SuppressedAttr == "" {
		o.SuppressedAttr = DefaultSuppressedAttr
	}
	o.Clock = clock.Or(o.Clock)
}

// Validate checks o (after EnsureDefaults).
func (o *RefusalsOptions) Validate() error {
	var errs []error
	if o.Message == "" {
		errs = append(errs, errors.New("a log message is required"))
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %v must not be negative", o.Interval))
	}
	if o.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max keys %d must not be negative", o.MaxKeys))
	}
	if o.Registerer != nil && o.Metric == "" {
		errs = append(errs, errors.New("a metric name is required with a registerer"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("admit: invalid options: %w", err)
	}
	return nil
}

// Refusals counts refused callers by reason and logs them, at most one
// line per key (reason, or reason and host) per Interval; a line says how
// many refusals of its key were not logged before it. A flood of refused
// callers therefore costs a counter increment each and a bounded table,
// never a flood of logs. Methods are safe for concurrent use.
type Refusals struct {
	log *slog.Logger
	s   *refusalState // shared by WithLogger views
}

type refusalState struct {
	o       RefusalsOptions
	counter *prometheus.CounterVec // nil: not exported

	mu         sync.Mutex
	counts     map[string]uint64 // by reason
	last       map[refusalKey]*keyState
	pruned     time.Time // last prune scan
	pruneScans int       // for tests
	changed    Signal    // signals the next refusal (Changed)
}

type refusalKey struct{ reason, host string }

type keyState struct {
	logged     time.Time
	suppressed int64
}

// NewRefusals returns the Refusals o describes, its counter registered on
// o.Registerer if set.
func NewRefusals(o RefusalsOptions) (*Refusals, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &refusalState{o: o, counts: map[string]uint64{}, last: map[refusalKey]*keyState{}}
	for _, r := range o.Reasons {
		s.counts[r] = 0
	}
	if o.Registerer != nil {
		s.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: o.Metric, Help: o.Help}, []string{"reason"})
		for _, r := range o.Reasons {
			s.counter.WithLabelValues(r) // every reason visible from the start, at 0
		}
		if err := o.Registerer.Register(s.counter); err != nil {
			return nil, fmt.Errorf("admit: register %s: %w", o.Metric, err)
		}
	}
	return &Refusals{log: o.Logger, s: s}, nil
}

// WithLogger returns a Refusals sharing r's counts and rate limits that
// logs to log.
func (r *Refusals) WithLogger(log *slog.Logger) *Refusals {
	return &Refusals{log: log, s: r.s}
}

// Refuse records one refusal for reason of the caller at addr (may be
// nil), with detail for the log.
func (r *Refusals) Refuse(reason string, addr net.Addr, detail string) {
	s := r.s
	if s.counter != nil {
		s.counter.WithLabelValues(reason).Inc()
	}
	var peerAddr, host string
	if s.o.ByPeer {
		peerAddr, host = "unknown", "unknown"
		if addr != nil {
			peerAddr = addr.String()
			host = peerAddr
			if h, _, err := net.SplitHostPort(peerAddr); err == nil {
				host = h
			}
		}
	}
	now := s.o.Clock.Now()
	s.mu.Lock()
	s.counts[reason]++
	s.changed.Notify()
	suppressed, ok := s.admitLine(refusalKey{reason, host}, now)
	s.mu.Unlock()
	if !ok {
		return
	}
	if s.o.ByPeer {
		r.log.Warn(s.o.Message, "reason", reason, "peer", peerAddr, "detail", detail, s.o.SuppressedAttr, suppressed)
	} else {
		r.log.Warn(s.o.Message, "reason", reason, "detail", detail, s.o.SuppressedAttr, suppressed)
	}
}

// Count returns the refusals for reason so far.
func (r *Refusals) Count(reason string) uint64 {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.counts[reason]
}

// Changed returns a channel closed at the next refusal. To wait for a
// count without missing one, get the channel first, then check Count.
func (r *Refusals) Changed() <-chan struct{} {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.s.changed.Chan()
}

// admitLine reports whether a refusal of k at now gets a log line, and
// how many of k it stands for that did not. s.mu is held.
func (s *refusalState) admitLine(k refusalKey, now time.Time) (int64, bool) {
	st := s.last[k]
	if st == nil {
		if len(s.last) >= s.o.MaxKeys && now.Sub(s.pruned) >= s.o.Interval {
			// At most once per interval: entries go stale no faster, and
			// a flood from many hosts must not scan the table each time.
			s.prune(now)
		}
		if len(s.last) >= s.o.MaxKeys {
			k.host = "other"
			st = s.last[k]
		}
		if st == nil {
			st = &keyState{logged: now.Add(-s.o.Interval)}
			s.last[k] = st
		}
	}
	if now.Sub(st.logged) < s.o.Interval {
		st.suppressed++
		return 0, false
	}
	suppressed := st.suppressed
	st.logged, st.suppressed = now, 0
	return suppressed, true
}

// prune drops keys with nothing suppressed whose interval is over. s.mu
// is held.
func (s *refusalState) prune(now time.Time) {
	s.pruned = now
	s.pruneScans++
	for k, st := range s.last {
		if st.suppressed == 0 && now.Sub(st.logged) >= s.o.Interval {
			delete(s.last, k)
		}
	}
}
