package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
	"github.com/ringcache/ringcache/pkg/prefetch/controller"
)

// longWarmer succeeds like fakeWarmer, reporting paths through symlinks
// and skipped symlinks with the longest names a volume holds, full of
// bytes %q expands fourfold.
type longWarmer struct{ fakeWarmer }

func (l *longWarmer) Warm(ctx context.Context, req controller.Request, onProgress func(prefetch.Progress)) (*controller.Outcome, error) {
	out, err := l.fakeWarmer.Warm(ctx, req, onProgress)
	if out == nil {
		return out, err
	}
	long := "/" + strings.Repeat("\x01", 4095)
	for range 5 {
		out.Resolved = append(out.Resolved, juice.PathResolution{Path: long, Resolved: long, Symlinks: 1, Files: 1})
	}
	out.SkippedLinks = 100
	out.Skipped = []juice.SkippedLink{{Link: long, Target: long[1:], Reason: `symlink "` + long + `" -> "` + long + `": too long`}}
	return out, err
}

// TestLongMessagesBounded: on a real API server, a run whose outcome
// names five 4096-byte paths through symlinks (and a skipped one) ends
// Succeeded, its status and condition messages within the 1 KiB budget,
// instead of staying Running because the API server refused a 49 KB
// condition message.
func TestLongMessagesBounded(t *testing.T) {
	c, ns := needAPI(t)
	fw := &longWarmer{}
	startController(t, ns, fw, clocktest.New(time.Date(2030, 3, 4, 7, 40, 0, 0, time.UTC)))
	w := newWarmup(ns, "long", v1alpha1.WarmupPolicy{})
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, client.ObjectKeyFromObject(w), v1alpha1.PhaseSucceeded, 20*time.Second)
	cond := condition(got, v1alpha1.ConditionComplete)
	if cond == nil || cond.Reason != v1alpha1.ReasonSucceeded {
		t.Fatalf("condition %+v", cond)
	}
	for what, msg := range map[string]string{"status message": got.Status.Message, "condition message": cond.Message} {
		if len(msg) > controller.MaxMessage || !utf8.ValidString(msg) {
			t.Errorf("%s: %d bytes (budget %d), valid UTF-8 %v", what, len(msg), controller.MaxMessage, utf8.ValidString(msg))
		}
		if !strings.HasPrefix(msg, "warmed 10 blocks") || !strings.Contains(msg, `\x01`) || !strings.Contains(msg, "…") {
			t.Errorf("%s: %q", what, msg)
		}
	}
	t.Logf("message: %d bytes", len(got.Status.Message))
}
