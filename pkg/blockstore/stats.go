package blockstore

import "sync/atomic"

// Stats is a snapshot of a Store's state and counters. Counters count since
// Open.
type Stats struct {
	Blocks        int64 // blocks in the store
	Bytes         int64 // data bytes of the blocks in the store
	DiskBytes     int64 // file bytes (data and headers) of the blocks in the store
	CapacityBytes int64 // Options.CapacityBytes

	Hits        int64 // Gets that returned data
	Misses      int64 // Gets that returned ErrNotFound
	Corrupt     int64 // Gets that found a corrupt block (and removed it)
	ReadErrors  int64 // Gets that failed on an I/O error (and dropped the block)
	Puts        int64 // blocks written
	WriteErrors int64 // Puts that failed on an I/O error, ErrNoSpace for a full disk included
	Evictions   int64 // blocks evicted for capacity or free space
	Dropped     int64 // invalid block files removed when Open rebuilt the index
}

// counters are the Stats counters a Store updates without its mutex.
type counters struct {
	hits, misses, corrupt, readErrors     atomic.Int64
	puts, writeErrors, evictions, dropped atomic.Int64
}

// Stats returns a snapshot of the store's state and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Blocks:    int64(s.idx.len()),
		Bytes:     s.idx.bytes,
		DiskBytes: s.idx.diskBytes,
	}
	s.mu.Unlock()
	st.CapacityBytes = s.opts.CapacityBytes
	st.Hits = s.stats.hits.Load()
	st.Misses = s.stats.misses.Load()
	st.Corrupt = s.stats.corrupt.Load()
	st.ReadErrors = s.stats.readErrors.Load()
	st.Puts = s.stats.puts.Load()
	st.WriteErrors = s.stats.writeErrors.Load()
	st.Evictions = s.stats.evictions.Load()
	st.Dropped = s.stats.dropped.Load()
	return st
}
