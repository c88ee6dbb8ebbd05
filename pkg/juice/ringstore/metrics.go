package ringstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// registerMetrics exports the store's counters, labelled by volume. They
// are read from the store's atomics at scrape time.
func registerMetrics(reg prometheus.Registerer, s *Store) error {
	labels := prometheus.Labels{"volume": s.o.Volume}
	counter := func(name, help string, src string, f func() int64) prometheus.Collector {
		l := prometheus.Labels{"volume": s.o.Volume}
		if src != "" {
			l["source"] = src
		}
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: l}, func() float64 { return float64(f()) })
	}
	const (
		reqHelp   = "Block reads served, by source: the cache node on this host, another cache node, or the origin directly."
		bytesHelp = "Block bytes read, by source."
	)
	cs := []prometheus.Collector{
		counter("ringcache_mount_reads_total", reqHelp, "local", s.c.localReads.Load),
		counter("ringcache_mount_reads_total", reqHelp, "peer", s.c.peerReads.Load),
		counter("ringcache_mount_reads_total", reqHelp, "origin", s.c.originReads.Load),
		counter("ringcache_mount_read_bytes_total", bytesHelp, "local", s.c.localBytes.Load),
		counter("ringcache_mount_read_bytes_total", bytesHelp, "peer", s.c.peerBytes.Load),
		counter("ringcache_mount_read_bytes_total", bytesHelp, "origin", s.c.originBytes.Load),
		counter("ringcache_mount_fallbacks_total", "Owner attempts that failed and passed the read to the next owner or the origin.", "", s.c.fallbacks.Load),
		counter("ringcache_mount_hedges_total", "Second requests sent because an owner was slower than the hedging delay.", "", s.c.hedges.Load),
		counter("ringcache_mount_hedges_skipped_total", "Hedges not sent because the next owner did not hold the block (it would have fetched it from the origin a second time).", "", s.c.hedgesSkipped.Load),
		counter("ringcache_mount_read_timeouts_total", "Block reads given up on because the block's read budget ran out (origin and owners unresponsive).", "", s.c.readTimeouts.Load),
		counter("ringcache_mount_checksum_errors_total", "Responses refused because their bytes did not match their checksum.", "", s.c.checksumErrors.Load),
		counter("ringcache_mount_passthrough_total", "Calls for objects other than data blocks, sent to the origin unchanged.", "", s.c.passThrough.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ringcache_mount_ring_members", Help: "Members in the mount's ring view.", ConstLabels: labels}, func() float64 { return float64(len(s.Members())) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
