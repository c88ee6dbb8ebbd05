package controller

import (
	"strings"
	"unicode/utf8"

	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
)

// MaxMessage is the most bytes of a status or condition message the
// controller writes (the CRD allows 32768 per condition; the log has
// everything). Longer messages are clipped, ending with "…".
const MaxMessage = 1024

// clip returns s cut to at most max bytes, on a rune boundary, ending
// with "…" when cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	n := max - len(ell)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ell
}

// boundMessages clips the status message and every condition message of
// st to MaxMessage bytes: every status write goes through it.
func boundMessages(st *v1alpha1.WarmupStatus) {
	st.Message = clip(strings.ToValidUTF8(st.Message, "\uFFFD"), MaxMessage)
	for i := range st.Conditions {
		st.Conditions[i].Message = clip(strings.ToValidUTF8(st.Conditions[i].Message, "\uFFFD"), MaxMessage)
	}
}

// minimalMessages replaces the messages of st with one that cannot be
// refused, for the retry after the API server rejected a status write.
func minimalMessages(st *v1alpha1.WarmupStatus) {
	const msg = "the status message was rejected by the API server; see the controller's log"
	st.Message = msg
	for i := range st.Conditions {
		st.Conditions[i].Message = msg
	}
}
