package peer

import (
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/pkg/admit"
	"github.com/ringcache/ringcache/pkg/clock"
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

// refusedMetric counts refused callers by reason (on ServerOptions.Registerer).
const (
	refusedMetric = "ringcache_peer_refused_total"
	refusedHelp   = "Callers refused before being served, by reason: no_token, no_bearer, bad_token, no_deadline, bad_frame, too_many_conns."
)

// refusals counts refused callers by reason and logs them ("peer
// refused"), at most one line per reason and peer host per interval; a
// line says how many refusals of the pair it stood for were not logged
// before it (admit.Refusals).
type refusals struct{ r *admit.Refusals }

// newRefusals returns the server's refusal log, counted on reg as
// ringcache_peer_refused_total when reg is not nil.
func newRefusals(log *slog.Logger, clk clock.Clock, interval time.Duration, reg prometheus.Registerer) (*refusals, error) {
	r, err := admit.NewRefusals(admit.RefusalsOptions{
		Message: "peer refused", Logger: log, Clock: clk, Interval: interval, ByPeer: true,
		Reasons: refusalReasons, Registerer: reg, Metric: refusedMetric, Help: refusedHelp,
	})
	if err != nil {
		return nil, err
	}
	return &refusals{r}, nil
}

// refuse records one refusal of the caller at addr (may be nil).
func (r *refusals) refuse(reason string, addr net.Addr, detail string) {
	r.r.Refuse(reason, addr, detail)
}
