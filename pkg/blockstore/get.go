package blockstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
)

// readChunkSize is the buffer size for checksumming the parts of a block a
// ranged Get does not return.
const readChunkSize = 256 << 10

// Get returns limit bytes of k's data from offset off, or all bytes from
// off if limit is -1 or fewer than limit remain, and k's Meta. The range
// is checked by Range: an off beyond the data fails with ErrRange, off
// equal to its length returns no bytes, a negative off or a limit below -1
// fails with ErrInvalidRange.
//
// A miss returns ErrNotFound. Every Get reads and checksums the whole
// block: a block whose file fails the check (bad checksum, truncated,
// wrong header) is removed from disk and index, counted in Stats.Corrupt,
// logged, and Get returns an error wrapping ErrCorrupt and nothing else.
// A block whose file cannot be read for an I/O error is dropped as well,
// so that the caller can fetch and Put it again, and Get counts it in
// Stats.ReadErrors and returns an error wrapping the I/O error; a failure
// to open the file (too many open files, say) is counted and returned the
// same way but keeps the block. Callers should treat every error as a
// miss.
func (s *Store) Get(ctx context.Context, k Key, off, limit int64) ([]byte, Meta, error) {
	if err := ctx.Err(); err != nil {
		return nil, Meta{}, err
	}
	now := s.opts.Clock.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, Meta{}, ErrClosed
	}
	e, ok := s.idx.get(k)
	if !ok {
		s.mu.Unlock()
		s.stats.misses.Add(1)
		return nil, Meta{}, ErrNotFound
	}
	if _, _, err := Range(off, limit, e.size); err != nil {
		s.mu.Unlock()
		return nil, Meta{}, fmt.Errorf("get %s: %w", k, err)
	}
	s.idx.touch(e)
	touch := now.Sub(e.touched) >= mtimeGranularity
	if touch {
		e.touched = now
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	path := s.path(e.id)
	data, meta, err := s.read(path, k, off, limit)
	switch {
	case err == nil:
		s.stats.hits.Add(1)
		if touch {
			if err := s.fs.Chtimes(path, now, now); err != nil {
				s.log.Debug("blockstore cannot set block mtime", "key", k, "err", err)
			}
		}
		return data, meta, nil
	case errors.Is(err, ErrRange), errors.Is(err, ErrInvalidRange):
		return nil, Meta{}, err
	case errors.Is(err, fs.ErrNotExist):
		// Deleted or evicted since the lookup, or removed behind our back.
		if s.forget(e, false) {
			s.log.Warn("blockstore block file vanished", "key", k, "path", path)
		}
		s.stats.misses.Add(1)
		return nil, Meta{}, ErrNotFound
	case errors.Is(err, ErrCorrupt):
		s.stats.corrupt.Add(1)
		s.log.Warn("blockstore removing corrupt block", "key", k, "path", path, "err", err)
		s.forget(e, true)
		return nil, Meta{}, fmt.Errorf("blockstore: get %s: %w", k, err)
	default:
		s.stats.readErrors.Add(1)
		if oe := (*openError)(nil); errors.As(err, &oe) {
			// Failing to open (EMFILE, EACCES, ...) says nothing about
			// the block's data: keep it.
			s.log.Error("blockstore cannot open block file", "key", k, "err", err)
		} else {
			s.log.Error("blockstore cannot read block; dropping it", "key", k, "path", path, "err", err)
			s.forget(e, true)
		}
		return nil, Meta{}, fmt.Errorf("blockstore: get %s: %w", k, err)
	}
}

// read reads the requested part of the block file at path, checking the
// whole file. Errors wrap ErrCorrupt for a bad file, ErrRange for a bad
// offset, or the I/O error.
func (s *Store) read(path string, k Key, off, limit int64) ([]byte, Meta, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, Meta{}, &openError{err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Meta{}, err
	}
	h, err := readHeader(f, fi.Size())
	if err != nil {
		return nil, Meta{}, err
	}
	if h.key != k {
		return nil, Meta{}, corruptf("file holds block %s", h.key)
	}
	// The file may be a newer one of the same key than the index entry
	// checked: check off again.
	start, end, err := Range(off, limit, h.dataLen)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("get %s: %w", k, err)
	}
	off, n := start, end-start
	base := h.size()
	out := make([]byte, n)
	crc, err := s.checksum(f, 0, base, off)
	if err != nil {
		return nil, Meta{}, err
	}
	if err := readFullAt(f, out, base+off); err != nil {
		return nil, Meta{}, err
	}
	crc = crc32.Update(crc, castagnoli, out)
	if crc, err = s.checksum(f, crc, base+off+n, h.dataLen-off-n); err != nil {
		return nil, Meta{}, err
	}
	if crc != h.dataCRC {
		return nil, Meta{}, corruptf("data checksum %08x, want %08x", crc, h.dataCRC)
	}
	return out, h.meta, nil
}

// openError is a failure to open a block file.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// checksum updates crc with n bytes of f from off.
func (s *Store) checksum(f File, crc uint32, off, n int64) (uint32, error) {
	if n == 0 {
		return crc, nil
	}
	bp := s.chunks.Get().(*[]byte)
	defer s.chunks.Put(bp)
	for n > 0 {
		b := (*bp)[:min(n, int64(len(*bp)))]
		if err := readFullAt(f, b, off); err != nil {
			return 0, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		off += int64(len(b))
		n -= int64(len(b))
	}
	return crc, nil
}
