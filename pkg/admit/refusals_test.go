package admit

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func newRefusals(t *testing.T, o RefusalsOptions) *Refusals {
	t.Helper()
	r, err := NewRefusals(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tcp(a, b, c, d byte, port int) net.Addr {
	return &net.TCPAddr{IP: net.IPv4(a, b, c, d), Port: port}
}

// TestRefusalsByPeer: one line per reason and peer host per interval of
// the clock, the next one saying how many were suppressed; every refusal
// counted.
func TestRefusalsByPeer(t *testing.T) {
	var logs syncBuffer
	clk := clocktest.New(t0)
	r := newRefusals(t, RefusalsOptions{Message: "peer refused", ByPeer: true, Interval: time.Minute, Clock: clk,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := range 5 {
		r.Refuse("bad_token", tcp(10, 0, 0, 1, 100+i), "x")
	}
	r.Refuse("no_token", tcp(10, 0, 0, 1, 1), "")
	r.Refuse("bad_token", tcp(10, 0, 0, 2, 2), "")
	r.Refuse("bad_token", nil, "")
	if got := logs.lines(); len(got) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logs.lines()[3]; !strings.Contains(got, "peer=unknown") {
		t.Errorf("refusal without an address: %q", got)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	r.Refuse("bad_token", tcp(10, 0, 0, 1, 1), "")
	if got := logs.lines(); len(got) != 4 {
		t.Fatalf("within the interval: %d lines, want 4", len(got))
	}
	clk.Advance(time.Nanosecond)
	r.Refuse("bad_token", tcp(10, 0, 0, 1, 1), "later")
	lines := logs.lines()
	if len(lines) != 5 || !strings.Contains(lines[4], `msg="peer refused" reason=bad_token peer=10.0.0.1:1 detail=later suppressed=5`) {
		t.Fatalf("after the interval: %q", lines)
	}
	if got := r.Count("bad_token"); got != 9 {
		t.Errorf("counted %d bad_token, want 9", got)
	}
	if got := r.Count("no_deadline"); got != 0 {
		t.Errorf("counted %d no_deadline, want 0", got)
	}
}

// TestRefusalsByReason: without ByPeer one key per reason, whatever the
// address; WithLogger shares counts and limits, and SuppressedAttr names
// the count.
func TestRefusalsByReason(t *testing.T) {
	var a, b syncBuffer
	clk := clocktest.New(t0)
	r := newRefusals(t, RefusalsOptions{Message: "gossip refused", Interval: 10 * time.Second, SuppressedAttr: "suppressed_since_last",
		Clock: clk, Logger: slog.New(slog.NewTextHandler(&a, nil))})
	other := r.WithLogger(slog.New(slog.NewTextHandler(&b, nil)))
	for i := range 100 {
		r.Refuse("key", tcp(10, 0, 0, byte(i), 1), "from=somewhere")
	}
	other.Refuse("key", nil, "")
	other.Refuse("too_many_streams", nil, "held")
	clk.Advance(10 * time.Second)
	other.Refuse("key", nil, "again")
	if got := a.lines(); len(got) != 1 {
		t.Fatalf("first logger: %q", got)
	}
	got := b.lines()
	if len(got) != 2 || !strings.Contains(got[0], `reason=too_many_streams detail=held suppressed_since_last=0`) ||
		!strings.Contains(got[1], `reason=key detail=again suppressed_since_last=100`) || strings.Contains(got[1], "peer=") {
		t.Fatalf("second logger: %q", got)
	}
	if n := r.Count("key"); n != 102 {
		t.Errorf("counted %d, want 102", n)
	}
}

// TestRefusalsTableBounded: many hosts keep the table at MaxKeys plus the
// shared "other" key per reason.
func TestRefusalsTableBounded(t *testing.T) {
	r := newRefusals(t, RefusalsOptions{Message: "m", ByPeer: true, Clock: clocktest.New(t0)})
	for i := range 5 * DefaultMaxKeys {
		r.Refuse("bad_frame", tcp(10, 1, byte(i>>8), byte(i), 1), "")
	}
	if n := len(r.s.last); n > DefaultMaxKeys+1 {
		t.Errorf("%d entries", n)
	}
}

// TestRefusalPruneOncePerInterval: once the table is full, refusals from
// further hosts scan it for stale entries at most once per interval, not
// once each (a scan of 1024 entries under the lock per refusal).
func TestRefusalPruneOncePerInterval(t *testing.T) {
	clk := clocktest.New(t0)
	r := newRefusals(t, RefusalsOptions{Message: "m", ByPeer: true, Interval: time.Minute, Clock: clk})
	host := func(i int) net.Addr { return tcp(10, byte(i>>16), byte(i>>8), byte(i), 1) }
	for i := range DefaultMaxKeys {
		r.Refuse("bad_frame", host(i), "")
	}
	for i := range 1000 {
		r.Refuse("bad_frame", host(DefaultMaxKeys+i), "")
	}
	if r.s.pruneScans > 1 {
		t.Errorf("%d prune scans for 1000 refusals within one interval, want at most 1", r.s.pruneScans)
	}
	clk.Advance(time.Minute)
	r.Refuse("bad_frame", host(1<<20), "") // the interval is over: stale entries go
	if len(r.s.last) > 2 || r.s.pruneScans > 2 {
		t.Errorf("after the interval: %d entries, %d scans", len(r.s.last), r.s.pruneScans)
	}
}

// TestRefusalsCounter: the counter is registered under the given name,
// every listed reason at 0 from the start; Changed is closed by the next
// refusal.
func TestRefusalsCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newRefusals(t, RefusalsOptions{Message: "m", Registerer: reg, Metric: "test_refused_total", Help: "Refused.",
		Reasons: []string{"a", "b"}})
	changed := r.Changed()
	select {
	case <-changed:
		t.Fatal("Changed closed before any refusal")
	default:
	}
	r.Refuse("a", nil, "")
	<-changed
	r.Refuse("c", nil, "")
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "test_refused_total" || mf.GetType() != dto.MetricType_COUNTER || mf.GetHelp() != "Refused." {
			t.Fatalf("metric %s %v %q", mf.GetName(), mf.GetType(), mf.GetHelp())
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(got) != 3 || got["a"] != 1 || got["b"] != 0 || got["c"] != 1 {
		t.Fatalf("counter %v", got)
	}
	if _, err := NewRefusals(RefusalsOptions{Message: "m", Registerer: reg, Metric: "test_refused_total"}); err == nil {
		t.Error("registering the same metric twice succeeded")
	}
}

func TestRefusalsOptions(t *testing.T) {
	_, err := NewRefusals(RefusalsOptions{Interval: -1, MaxKeys: -1, Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.HasPrefix(err.Error(), "admit: invalid options: ") {
		t.Fatalf("invalid options: %v", err)
	}
	for _, want := range []string{"message", "interval", "max keys", "metric name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	o := RefusalsOptions{Message: "m"}
	o.EnsureDefaults()
	if o.Interval != DefaultInterval || o.MaxKeys != DefaultMaxKeys || o.SuppressedAttr != DefaultSuppressedAttr || o.Logger == nil || o.Clock == nil {
		t.Fatalf("defaults %+v", o)
	}
}
