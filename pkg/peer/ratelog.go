package peer

import (
	"log/slog"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// RateLog logs events under msg at most once per key and interval, like
// the refusal log (refusals.go): a line says how many events of its key
// it stood for that were not logged before it. The cache logs origin
// failures through it, keyed by volume.
//
// It wraps the refusal log until that moves to a package of its own; the
// cache then calls that package and RateLog goes.
type RateLog struct{ r *refusals }

// NewRateLog returns a RateLog writing msg lines to log.
func NewRateLog(log *slog.Logger, c clock.Clock, interval time.Duration, msg string) *RateLog {
	r := newRefusals(log, clock.Or(c).Now, interval)
	r.msg = msg
	return &RateLog{r: r}
}

// Log records one event of key with its detail.
func (l *RateLog) Log(key, detail string) { l.r.refuse(key, nil, detail) }
