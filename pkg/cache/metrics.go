package cache

import "github.com/prometheus/client_golang/prometheus"

// metrics exports the cache's counters. Counters are read from the
// cache's own atomics at scrape time, so Stats and /metrics never
// disagree.
type metrics struct {
	fetchSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, c *Cache) (*metrics, error) {
	m := &metrics{
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringcache_origin_fetch_seconds",
			Help:    "Time to read one object from the origin, once its fetch holds an origin slot (the wait for the slot is not included).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	cs := []prometheus.Collector{
		m.fetchSeconds,
		counter("ringcache_hits_total", "Reads served from the block store.", c.c.hits.Load),
		counter("ringcache_misses_total", "Reads and warms that needed the origin.", c.c.misses.Load),
		counter("ringcache_origin_fetches_total", "Objects fetched from the origin.", c.c.originFetches.Load),
		counter("ringcache_origin_bytes_total", "Bytes read from the origin.", c.c.originBytes.Load),
		counter("ringcache_origin_errors_total", "Failed origin fetches.", c.c.originErrors.Load),
		counter("ringcache_singleflight_dedup_total", "Requests that joined an origin fetch already in flight.", c.c.dedupWaits.Load),
		counter("ringcache_store_put_errors_total", "Fetched blocks that could not be stored (served anyway).", c.c.storeErrors.Load),
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
