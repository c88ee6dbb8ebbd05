package cache_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/cache"
	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

// TestOriginLogRateLimited: the origin-failure log is rate-limited per
// volume, under its own message.
func TestOriginLogRateLimited(t *testing.T) {
	var logs syncBuffer
	clk := clocktest.New(time.Unix(1000, 0))
	o := cache.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: clk, OriginLogInterval: time.Minute}
	r, err := cache.NewOriginLog(o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.Refuse("models", nil, "k: boom")
	}
	r.Refuse("other", nil, "k: boom")
	clk.Advance(time.Minute)
	r.Refuse("models", nil, "k: again")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `msg="origin fetch failed" reason=models peer=unknown detail="k: boom" suppressed=0`) ||
		!strings.Contains(lines[2], `reason=models peer=unknown detail="k: again" suppressed=2`) {
		t.Fatalf("lines %q", lines)
	}
}
