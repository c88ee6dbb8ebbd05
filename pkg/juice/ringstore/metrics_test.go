package ringstore

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gathered returns the value of every sample of reg, keyed by
// `name{label=value,...}` with labels in the registry's (sorted) order.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			default:
				t.Errorf("%s: unexpected type %v", key, mf.GetType())
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	c := newCluster(t, 3)
	reg := prometheus.NewRegistry()
	s := c.newStore(c.nodes[0].addr, func(o *Options) { o.Registerer = reg })

	kl, dl := c.block(1000, ownedBy(c.nodes[0].addr))
	kp, dp := c.block(2000, ownedBy(c.nodes[1].addr))
	get(t, s, testPrefix+kl, 0, -1, dl)
	get(t, s, testPrefix+kp, 0, -1, dp)
	get(t, s, testPrefix+kp, 0, 500, dp[:500])
	// The nodes cannot reach the origin; a cold block comes from the
	// store's origin after both owners fail.
	c.peerOrigin.fail.Store(true)
	ko, do := c.block(3000, ownedBy(c.nodes[2].addr))
	get(t, s, testPrefix+ko, 0, -1, do)
	if err := c.base.Put(testPrefix+"meta/x.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	get(t, s, testPrefix+"meta/x.json", 0, -1, []byte("{}")) // pass-through

	st := s.Stats()
	if st.LocalReads != 1 || st.PeerReads != 2 || st.OriginReads != 1 || st.Fallbacks != 2 || st.PassThrough != 1 {
		t.Fatalf("stats = %+v", st)
	}
	got := gathered(t, reg)
	v := "volume=" + testVol
	want := map[string]float64{
		"ringcache_mount_reads_total{source=local," + v + "}":       float64(st.LocalReads),
		"ringcache_mount_reads_total{source=peer," + v + "}":        float64(st.PeerReads),
		"ringcache_mount_reads_total{source=origin," + v + "}":      float64(st.OriginReads),
		"ringcache_mount_read_bytes_total{source=local," + v + "}":  float64(st.LocalBytes),
		"ringcache_mount_read_bytes_total{source=peer," + v + "}":   float64(st.PeerBytes),
		"ringcache_mount_read_bytes_total{source=origin," + v + "}": float64(st.OriginBytes),
		"ringcache_mount_fallbacks_total{" + v + "}":                float64(st.Fallbacks),
		"ringcache_mount_hedges_total{" + v + "}":                   float64(st.Hedges),
		"ringcache_mount_hedges_skipped_total{" + v + "}":           float64(st.HedgesSkipped),
		"ringcache_mount_read_timeouts_total{" + v + "}":            float64(st.ReadTimeouts),
		"ringcache_mount_checksum_errors_total{" + v + "}":          float64(st.ChecksumErrors),
		"ringcache_mount_passthrough_total{" + v + "}":              float64(st.PassThrough),
		"ringcache_mount_ring_members{" + v + "}":                   3,
	}
	if st.LocalBytes != 1000 || st.PeerBytes != 2500 || st.OriginBytes != 3000 {
		t.Errorf("bytes = %+v", st)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("gathered %d series, want %d: %v", len(got), len(want), got)
	}

	// A second store of the same volume on the same registry is refused.
	if _, err := New(Options{Origin: c.origin, LocalNode: c.nodes[0].addr, Token: []byte(testToken), Volume: testVol, Prefix: testPrefix, Registerer: reg}); err == nil {
		t.Error("a second store registered the same metrics")
	}
}
