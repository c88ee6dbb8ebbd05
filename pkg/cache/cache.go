package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/admit"
	"github.com/ringcache/ringcache/pkg/blockstore"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// Stats are the cache's counters since start.
type Stats struct {
	Hits          int64 // reads served from the store
	Misses        int64 // reads that needed the origin
	OriginFetches int64 // objects fetched from the origin
	OriginBytes   int64
	OriginErrors  int64
	DedupWaits    int64 // callers that joined a fetch already in flight
	StoreErrors   int64 // failed stores after a fetch (block served anyway)
}

type counters struct {
	hits, misses, originFetches, originBytes, originErrors, dedupWaits, storeErrors atomic.Int64
}

// Cache is a cache node's block cache over its store and its volumes'
// origins. It implements peer.Cache.
type Cache struct {
	o         Options
	log       *slog.Logger
	store     Store
	volumes   map[string]*Volume // by UUID
	slots     *originSlots
	limiter   *rate.Limiter
	flights   flightGroup
	c         counters
	metrics   *metrics
	originLog *admit.Refusals
}

var _ peer.Cache = (*Cache)(nil)

// New returns a cache for o.
func New(o Options) (*Cache, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{
		o:       o,
		log:     o.Logger,
		store:   o.Store,
		volumes: make(map[string]*Volume),
		slots:   newOriginSlots(o.OriginConcurrency),
	}
	var err error
	if c.originLog, err = newOriginLog(o); err != nil {
		return nil, err
	}
	for i := range o.Volumes {
		v := &o.Volumes[i]
		c.volumes[v.UUID] = v
	}
	if o.OriginBandwidth > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(o.OriginBandwidth), max(o.ReadChunkSize, 1<<20))
	}
	if o.Registerer != nil {
		m, err := newMetrics(o.Registerer, c)
		if err != nil {
			return nil, err
		}
		c.metrics = m
	}
	return c, nil
}

// Volumes implements peer.Cache.
func (c *Cache) Volumes() []peer.Volume {
	vs := make([]peer.Volume, len(c.o.Volumes))
	for i, v := range c.o.Volumes {
		vs[i] = v.Volume
	}
	return vs
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.c.hits.Load(), Misses: c.c.misses.Load(),
		OriginFetches: c.c.originFetches.Load(), OriginBytes: c.c.originBytes.Load(),
		OriginErrors: c.c.originErrors.Load(), DedupWaits: c.c.dedupWaits.Load(),
		StoreErrors: c.c.storeErrors.Load(),
	}
}

// Status implements peer.Cache: the store's and the cache's counters a
// Status answer reports.
func (c *Cache) Status() peer.CacheStats {
	st, cs := c.store.Stats(), c.Stats()
	return peer.CacheStats{
		StoreBlocks: st.Blocks, StoreBytes: st.Bytes, StoreCapacityBytes: st.CapacityBytes, CorruptBlocks: st.Corrupt,
		Hits: cs.Hits, Misses: cs.Misses, OriginFetches: cs.OriginFetches, OriginBytes: cs.OriginBytes, DedupWaits: cs.DedupWaits,
	}
}

// volume returns the cache's volume for pv (the server resolved it from
// the cache's own list).
func (c *Cache) volume(pv peer.Volume) *Volume { return c.volumes[pv.UUID] }

// Read implements peer.Cache: bytes [off, off+limit) of the block, from
// the store or, on a miss, from the origin through the single flight.
func (c *Cache) Read(ctx context.Context, pv peer.Volume, key string, off, limit int64) ([]byte, peer.BlockInfo, error) {
	v := c.volume(pv)
	k := blockstore.Key{Volume: v.UUID, Object: key}
	if data, info, ok, err := c.fromStore(ctx, v, k, off, limit); ok || err != nil {
		return data, info, err
	}
	c.c.misses.Add(1)
	f, err := c.fetch(ctx, v, key, classRead)
	if err != nil {
		return nil, peer.BlockInfo{}, err
	}
	size := int64(len(f.data))
	start, end, err := blockstore.Range(off, limit, size)
	if err != nil {
		return nil, peer.BlockInfo{}, peer.RangeError(err, off, size)
	}
	return f.data[start:end], peer.BlockInfo{Compressible: f.compressible, ObjectSize: size, Source: peerpb.Source_SOURCE_ORIGIN}, nil
}

// fromStore reads a range of k from the store. ok reports a hit; err is a
// status error for a read that must not go on to the origin (a bad range,
// the caller gone). A block that is absent, corrupt (dropped by the store)
// or unreadable is neither: the caller fetches it.
func (c *Cache) fromStore(ctx context.Context, v *Volume, k blockstore.Key, off, limit int64) ([]byte, peer.BlockInfo, bool, error) {
	size, ok := c.store.Has(k)
	if !ok {
		return nil, peer.BlockInfo{}, false, nil
	}
	data, m, err := c.store.Get(ctx, k, off, limit)
	switch {
	case err == nil:
		c.c.hits.Add(1)
		return data, peer.BlockInfo{Compressible: m.Compressible, ObjectSize: size, Source: peerpb.Source_SOURCE_STORE}, true, nil
	case errors.Is(err, blockstore.ErrRange), errors.Is(err, blockstore.ErrInvalidRange):
		return nil, peer.BlockInfo{}, false, peer.RangeError(err, off, size)
	case errors.Is(err, blockstore.ErrCorrupt):
		c.log.Warn("corrupt block dropped, refetching", "volume", v.Name, "key", k.Object)
	case ctx.Err() != nil:
		return nil, peer.BlockInfo{}, false, status.FromContextError(ctx.Err()).Err()
	default:
		c.log.Warn("store read failed, treating as miss", "volume", v.Name, "key", k.Object, "err", err)
	}
	return nil, peer.BlockInfo{}, false, nil
}

// Has implements peer.Cache.
func (c *Cache) Has(pv peer.Volume, key string) (int64, bool) {
	return c.store.Has(blockstore.Key{Volume: pv.UUID, Object: key})
}

// Warm implements peer.Cache. Keys are fetched concurrently, bounded by
// the origin slots warms may hold (WarmSlots), at a lower priority than
// reads.
func (c *Cache) Warm(ctx context.Context, pv peer.Volume, keys []string) []*peerpb.WarmResult {
	v := c.volume(pv)
	res := make([]*peerpb.WarmResult, len(keys))
	work := make(chan int)
	done := make(chan struct{})
	workers := min(len(keys), c.slots.maxWarm)
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range work {
				res[i] = c.warmOne(ctx, v, keys[i])
			}
		}()
	}
	for i := range keys {
		work <- i
	}
	close(work)
	for range workers {
		<-done
	}
	return res
}

func (c *Cache) warmOne(ctx context.Context, v *Volume, key string) *peerpb.WarmResult {
	r := &peerpb.WarmResult{Key: key}
	if size, ok := c.store.Has(blockstore.Key{Volume: v.UUID, Object: key}); ok {
		r.State, r.Size = peerpb.WarmResult_STATE_CACHED, size
		return r
	}
	f, err := c.fetch(ctx, v, key, classWarm)
	if err != nil {
		r.State, r.Error = peerpb.WarmResult_STATE_FAILED, status.Convert(err).Message()
		return r
	}
	r.State, r.Size = peerpb.WarmResult_STATE_FETCHED, int64(len(f.data))
	return r
}

// newOriginLog returns the "origin fetch failed" log: one line per volume
// per OriginLogInterval, saying how many failures it stands for.
func newOriginLog(o Options) (*admit.Refusals, error) {
	return admit.NewRefusals(admit.RefusalsOptions{
		Message: "origin fetch failed", Logger: o.Logger, Clock: o.Clock, Interval: o.OriginLogInterval, ByPeer: true,
	})
}
