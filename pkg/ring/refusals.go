package ring

import (
	"bytes"
	"log/slog"
	"time"

	"github.com/ringcache/ringcache/pkg/admit"
	"github.com/ringcache/ringcache/pkg/clock"
)

// Refusal is why memberlist dropped an incoming gossip message before
// reading it: the sender is not a member of this ring.
type Refusal string

// The refusal reasons Membership.Refused counts.
const (
	// RefusedKey: no installed key decrypts the message (a wrong key, a
	// plaintext UDP packet, or garbage).
	RefusedKey Refusal = "key"
	// RefusedUnencrypted: a TCP stream arrived in plaintext.
	RefusedUnencrypted Refusal = "unencrypted"
	// RefusedLabel: the message carries a label this node does not use.
	RefusedLabel Refusal = "label"
	// RefusedMalformed: another failure to receive a stream (truncated,
	// oversized, undecodable).
	RefusedMalformed Refusal = "malformed"
	// RefusedStreams: a TCP stream closed unread because too many streams
	// were open, from its source or in all (streamlimit.go).
	RefusedStreams Refusal = "too_many_streams"
	// RefusedOversized: a TCP stream longer than maxStreamBytes before
	// it could be authenticated.
	RefusedOversized Refusal = "oversized"
)

// Refusals lists every Refusal, for metrics.
var Refusals = [...]Refusal{RefusedKey, RefusedUnencrypted, RefusedLabel, RefusedMalformed, RefusedStreams, RefusedOversized}

// Indexes in Refusals, as classifyRefusal returns them.
const (
	iKey = iota
	iUnencrypted
	iLabel
	iMalformed
	iStreams
	iOversized
	nRefusals

	// iFollowUp: a line memberlist logs after a refusal it already
	// logged, about the same stream (its error reply could not be sent).
	// It is not counted again, and not logged above debug level.
	iFollowUp = -2
)

// refusalLogEvery bounds the "gossip refused" log lines: at most one per
// reason per interval, with the number left out since the last one. A peer
// with a wrong key retries every few seconds; a flood must not flood logs.
const refusalLogEvery = 10 * time.Second

// refusals counts and logs gossip refused by memberlist. memberlist has no
// hook for it, only its log lines, so classifyRefusal recognizes those of
// hashicorp/memberlist v0.7.0 (TestRefusalsCounted pins them by refusing
// real gossip: an upgrade that changes them fails that test). Counting and
// the rate limit are admit.Refusals: one "gossip refused" line per reason
// per refusalLogEvery.
type refusals struct{ r *admit.Refusals }

func newRefusals(clk clock.Clock) *refusals {
	reasons := make([]string, len(Refusals))
	for i, x := range Refusals {
		reasons[i] = string(x)
	}
	r, err := admit.NewRefusals(admit.RefusalsOptions{
		Message: "gossip refused", Interval: refusalLogEvery, SuppressedAttr: "suppressed_since_last",
		Reasons: reasons, Clock: clk,
	})
	if err != nil {
		panic(err) // constant options
	}
	return &refusals{r}
}

// classifyRefusal maps a memberlist log message (level and "memberlist: "
// prefix stripped) to the index of its Refusal, iFollowUp, or -1.
func classifyRefusal(msg []byte) int {
	switch {
	case bytes.HasPrefix(msg, []byte("Decrypt packet failed")):
		return iKey
	case bytes.HasPrefix(msg, []byte("Failed to send error:")):
		// After "failed to receive": the reply to a refused stream,
		// which a flooding sender does not read (i/o timeout).
		return iFollowUp
	case bytes.HasPrefix(msg, []byte("discarding stream with unacceptable label")),
		bytes.HasPrefix(msg, []byte("discarding packet with unacceptable label")),
		bytes.HasPrefix(msg, []byte("failed to receive and remove the stream label header")),
		bytes.HasPrefix(msg, []byte("unexpected double stream label header")),
		bytes.HasPrefix(msg, []byte("unexpected double packet label header")):
		return iLabel
	case bytes.HasPrefix(msg, []byte("failed to receive:")):
		switch {
		case bytes.Contains(msg, []byte("remote state is not encrypted")):
			return iUnencrypted
		case bytes.Contains(msg, []byte(errStreamTooLarge.Error())):
			return iOversized
		case bytes.Contains(msg, []byte("decrypt")), bytes.Contains(msg, []byte("encryption")):
			return iKey
		}
		return iMalformed
	}
	return -1
}

// observe counts msg if it is a refusal and logs it, rate-limited. It
// reports whether msg was a refusal (then the caller drops memberlist's own
// line).
func (r *refusals) observe(log *slog.Logger, msg []byte) bool {
	i := classifyRefusal(msg)
	if i == iFollowUp {
		log.Debug("gossip refused, follow-up", "detail", string(msg))
		return true
	}
	if i < 0 {
		return false
	}
	r.record(log, i, string(msg))
	return true
}

// refuse counts and logs, rate-limited, a refusal of this package's own
// (not one memberlist logged).
func (r *refusals) refuse(log *slog.Logger, reason Refusal, detail string) {
	for i, x := range Refusals {
		if x == reason {
			r.record(log, i, detail)
			return
		}
	}
}

func (r *refusals) record(log *slog.Logger, i int, msg string) {
	// The message holds memberlist's error and the sender's address
	// ("from=ip:port"), never key material.
	r.r.WithLogger(log).Refuse(string(Refusals[i]), nil, msg)
}

func (r *refusals) count(reason Refusal) uint64 { return r.r.Count(string(reason)) }

// changed returns a channel closed at the next refusal.
func (r *refusals) changed() <-chan struct{} { return r.r.Changed() }
