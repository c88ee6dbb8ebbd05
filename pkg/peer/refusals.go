package peer

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a node refuses a caller, the values of the reason label of
// ringcache_peer_refused_total.
const (
	reasonNoToken      = "no_token"       // no authorization header, or an empty token
	reasonNoBearer     = "no_bearer"      // authorization without the "Bearer " scheme
	reasonBadToken     = "bad_token"      // a token that is not the cluster token
	reasonNoDeadline   = "no_deadline"    // a call without a deadline
	reasonBadFrame     = "bad_frame"      // a data-plane message that breaks the protocol
	reasonTooManyConns = "too_many_conns" // a connection over a connection limit
)

var refusalReasons = []string{reasonNoToken, reasonNoBearer, reasonBadToken, reasonNoDeadline, reasonBadFrame, reasonTooManyConns}

// maxRefusalKeys bounds the (reason, peer) pairs whose log lines are
// rate-limited one by one; refusals from further peers share one entry.
const maxRefusalKeys = 1024

// refusals counts refused callers by reason and logs them, at most one
// line per reason and peer host per interval; a line says how many
// refusals of the pair it stood for were not logged before it.
type refusals struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	counter  *prometheus.CounterVec // nil: not exported
	msg      string                 // the log message (default "peer refused")

	mu         sync.Mutex
	last       map[refusalKey]*refusalState
	pruned     time.Time // last prune scan
	pruneScans int       // for tests
}

type refusalKey struct{ reason, host string }

type refusalState struct {
	logged     time.Time
	suppressed int64
}

func newRefusals(log *slog.Logger, now func() time.Time, interval time.Duration) *refusals {
	return &refusals{log: log, now: now, interval: interval, msg: "peer refused", last: map[refusalKey]*refusalState{}}
}

// refuse records one refusal of the caller at addr (may be nil).
func (r *refusals) refuse(reason string, addr net.Addr, detail string) {
	if r.counter != nil {
		r.counter.WithLabelValues(reason).Inc()
	}
	peerAddr, host := "unknown", "unknown"
	if addr != nil {
		peerAddr = addr.String()
		host = peerAddr
		if h, _, err := net.SplitHostPort(peerAddr); err == nil {
			host = h
		}
	}
	now := r.now()
	r.mu.Lock()
	k := refusalKey{reason, host}
	st := r.last[k]
	if st == nil {
		if len(r.last) >= maxRefusalKeys && now.Sub(r.pruned) >= r.interval {
			// At most once per interval: entries go stale no faster, and
			// a flood from many hosts must not scan the table each time.
			r.prune(now)
		}
		if len(r.last) >= maxRefusalKeys {
			k.host = "other"
			st = r.last[k]
		}
		if st == nil {
			st = &refusalState{logged: now.Add(-r.interval)}
			r.last[k] = st
		}
	}
	if now.Sub(st.logged) < r.interval {
		st.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.logged, st.suppressed = now, 0
	r.mu.Unlock()
	r.log.Warn(r.msg, "reason", reason, "peer", peerAddr, "detail", detail, "suppressed", suppressed)
}

// prune drops pairs with nothing suppressed whose interval is over.
// r.mu is held.
func (r *refusals) prune(now time.Time) {
	r.pruned = now
	r.pruneScans++
	for k, st := range r.last {
		if st.suppressed == 0 && now.Sub(st.logged) >= r.interval {
			delete(r.last, k)
		}
	}
}
