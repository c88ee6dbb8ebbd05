package blockstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"syscall"
)

// write is a Put in progress.
type write struct {
	key      Key
	size     int64
	done     chan struct{} // closed when the Put returns
	reserved bool          // size is still counted in Store.reserved
}

// Put stores data as k's block with Meta m. The block is written to a
// temporary file, fsynced and renamed into place, so it is stored whole or
// not at all. Put copies data: the caller may reuse it once Put returns.
//
// Blocks are immutable: if k is already stored, Put only marks it used and
// returns nil, keeping the stored data and Meta. Concurrent Puts of one key
// write it once; the others wait for that write and return nil if it
// succeeded, or try again if it failed.
//
// Put evicts least recently used blocks to stay within CapacityBytes and
// above MinFreeBytes of free disk space; it fails with ErrNoSpace when that
// cannot be done or the disk is full, and with ErrTooLarge for data larger
// than MaxBlockSize or CapacityBytes. A failed Put leaves the store as it
// was, but for blocks it evicted.
func (s *Store) Put(ctx context.Context, k Key, data []byte, m Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.validate(); err != nil {
		return err
	}
	size := int64(len(data))
	if size > s.opts.MaxBlockSize {
		return fmt.Errorf("%w: %d bytes, MaxBlockSize is %d", ErrTooLarge, size, s.opts.MaxBlockSize)
	}
	if size > s.opts.CapacityBytes {
		return fmt.Errorf("%w: %d bytes, CapacityBytes is %d", ErrTooLarge, size, s.opts.CapacityBytes)
	}
	w, victims, err := s.beginWrite(ctx, k, size)
	if err != nil || w == nil {
		return err
	}
	defer s.endWrite(w)
	s.removeVictims(victims)

	h := header{key: k, meta: m, dataLen: size, dataCRC: crc32.Checksum(data, castagnoli)}
	if err := s.ensureFreeSpace(h.fileSize()); err != nil {
		return fmt.Errorf("blockstore: put %s: %w", k, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id := newBlockID(k)
	tmp, err := s.writeTemp(id, &h, data)
	if err == nil {
		err = s.commit(w, id, tmp, &h)
	}
	if err != nil {
		s.stats.writeErrors.Add(1)
		s.log.Warn("blockstore cannot write block", "key", k, "err", err)
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("blockstore: put %s: %w: %w", k, ErrNoSpace, err)
		}
		return fmt.Errorf("blockstore: put %s: %w", k, err)
	}
	s.stats.puts.Add(1)
	return nil
}

// beginWrite makes the caller the writer of k and reserves size bytes of
// capacity for it, returning the blocks evicted to make room; their files
// are the caller's to remove. It returns a nil write if k is stored.
func (s *Store) beginWrite(ctx context.Context, k Key, size int64) (*write, []*entry, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, nil, ErrClosed
		}
		if e, ok := s.idx.get(k); ok {
			s.idx.touch(e)
			s.mu.Unlock()
			return nil, nil, nil
		}
		other, busy := s.writing[k]
		if !busy {
			victims, err := s.reserveLocked(size)
			if err != nil {
				s.mu.Unlock()
				return nil, nil, fmt.Errorf("blockstore: put %s: %w", k, err)
			}
			w := &write{key: k, size: size, done: make(chan struct{}), reserved: true}
			s.writing[k] = w
			s.inflight.Add(1)
			s.mu.Unlock()
			return w, victims, nil
		}
		s.mu.Unlock()
		select {
		case <-other.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// endWrite ends w, releasing its reservation if commit did not.
func (s *Store) endWrite(w *write) {
	s.mu.Lock()
	if w.reserved {
		s.reserved -= w.size
	}
	delete(s.writing, w.key)
	s.mu.Unlock()
	close(w.done)
	s.inflight.Done()
}

// writeTemp writes h and data to a new temporary file and syncs it,
// returning its name.
func (s *Store) writeTemp(id blockID, h *header, data []byte) (_ string, err error) {
	f, err := s.fs.CreateTemp(s.tmpDir, id.String()+".*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			if rerr := s.fs.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				s.log.Warn("blockstore cannot remove temporary file", "path", name, "err", rerr)
			}
		}
	}()
	if _, err := f.Write(h.encode()); err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// The mtime is the block's recency across restarts, by Options.Clock.
	now := s.opts.Clock.Now()
	if err := s.fs.Chtimes(name, now, now); err != nil {
		s.log.Debug("blockstore cannot set block mtime", "path", name, "err", err)
	}
	return name, nil
}

// commit renames the temporary file tmp into place and adds the block to
// the index.
func (s *Store) commit(w *write, id blockID, tmp string, h *header) error {
	stripe := s.stripe(id)
	stripe.Lock()
	defer stripe.Unlock()
	path := s.path(id)
	err := s.fs.Rename(tmp, path)
	if errors.Is(err, fs.ErrNotExist) {
		// Fan-out directories are created on first use.
		if err = s.fs.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = s.fs.Rename(tmp, path)
		}
	}
	if err != nil {
		if rerr := s.fs.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("blockstore cannot remove temporary file", "path", tmp, "err", rerr)
		}
		return err
	}
	e := &entry{
		key:      h.key,
		id:       id,
		size:     h.dataLen,
		diskSize: h.fileSize(),
		meta:     h.meta,
		touched:  s.opts.Clock.Now(),
	}
	s.mu.Lock()
	s.idx.add(e)
	s.reserved -= w.size
	w.reserved = false
	s.mu.Unlock()
	return nil
}

// reserveLocked reserves n bytes of capacity, evicting least recently used
// blocks as needed. It evicts nothing if it fails, which it does only when
// writes in progress hold the capacity. The caller must remove the
// returned blocks' files (with removeVictims) once it has released mu.
// s.mu must be held.
func (s *Store) reserveLocked(n int64) ([]*entry, error) {
	if s.reserved+n > s.opts.CapacityBytes {
		return nil, fmt.Errorf("%w: capacity is reserved by writes in progress", ErrNoSpace)
	}
	var victims []*entry
	for s.idx.bytes+s.reserved+n > s.opts.CapacityBytes {
		victims = append(victims, s.evictLocked())
	}
	s.reserved += n
	return victims, nil
}

// evictLocked evicts the least recently used block, which must exist, and
// returns it. s.mu must be held.
func (s *Store) evictLocked() *entry {
	e := s.idx.oldest()
	s.idx.remove(e)
	s.stats.evictions.Add(1)
	return e
}

// removeVictims removes the files of evicted blocks, unless a Put stored
// the block again in the meantime.
func (s *Store) removeVictims(victims []*entry) {
	for _, e := range victims {
		stripe := s.stripe(e.id)
		stripe.Lock()
		s.mu.Lock()
		_, back := s.idx.get(e.key)
		s.mu.Unlock()
		if !back {
			err := s.fs.Remove(s.path(e.id))
			switch {
			case err == nil || errors.Is(err, fs.ErrNotExist):
				s.log.Debug("blockstore evicted block", "key", e.key, "bytes", e.size)
			default:
				s.log.Warn("blockstore cannot remove evicted block", "key", e.key, "err", err)
			}
		}
		stripe.Unlock()
	}
}

// ensureFreeSpace makes sure that writing a file of n bytes leaves at
// least MinFreeBytes available on the file system, evicting least recently
// used blocks if that frees enough. Writes in progress are not accounted
// for, so concurrent Puts may dip below the floor by their size.
func (s *Store) ensureFreeSpace(n int64) error {
	if s.opts.MinFreeBytes == 0 {
		return nil
	}
	du, err := s.fs.StatFS(s.opts.Dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return err
	}
	deficit := s.opts.MinFreeBytes + n - du.AvailBytes
	if deficit <= 0 {
		return nil
	}
	s.mu.Lock()
	if s.idx.diskBytes < deficit {
		held := s.idx.diskBytes
		s.mu.Unlock()
		return fmt.Errorf("%w: %d bytes available, MinFreeBytes is %d, and evicting all %d bytes of blocks would not make room for %d more",
			ErrNoSpace, du.AvailBytes, s.opts.MinFreeBytes, held, n)
	}
	var victims []*entry
	for freed := int64(0); freed < deficit; {
		e := s.evictLocked()
		freed += e.diskSize
		victims = append(victims, e)
	}
	s.mu.Unlock()
	s.removeVictims(victims)
	return nil
}
