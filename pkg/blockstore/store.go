package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

const (
	blocksDirName = "blocks"
	tmpDirName    = "tmp"
	lockFileName  = "LOCK"

	// mtimeGranularity is how stale a block file's mtime may get before
	// a Get refreshes it; see "Recency across restarts" in the package doc.
	mtimeGranularity = time.Minute
)

// Store is a directory of blocks with an LRU index. It is safe for
// concurrent use.
//
// Locking: the index is guarded by mu, and no I/O is done with mu held.
// A block file is created (renamed into place) or removed only with its
// stripe held, and only after checking the index under mu, so a removal
// never hits a newer file of the same key. Readers take no stripe: an open
// file survives its removal, and whatever file they open at a block's path
// is checked to hold the key they asked for.
type Store struct {
	opts      Options
	fs        FS
	log       *slog.Logger
	blocksDir string
	tmpDir    string
	lock      io.Closer

	// chunks holds *[]byte buffers for checksumming the parts of a block
	// a ranged Get does not return.
	chunks sync.Pool

	stripes [256]sync.Mutex // by blockID[0]; taken before mu

	mu       sync.Mutex
	closed   bool
	idx      *index
	writing  map[Key]*write // Puts in progress, at most one per key
	reserved int64          // data bytes the writes in progress will add
	inflight sync.WaitGroup // Get, Put and Delete calls Close waits for

	stats counters
}

// Open opens the store in o.Dir, creating it if needed, and rebuilds the
// index from the block files' headers. Invalid block files and leftover
// temporary files are removed; if the blocks exceed o.CapacityBytes, the
// least recently used ones are evicted.
func Open(ctx context.Context, o Options) (*Store, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:      o,
		fs:        o.FS,
		log:       o.Logger,
		blocksDir: filepath.Join(o.Dir, blocksDirName),
		tmpDir:    filepath.Join(o.Dir, tmpDirName),
		idx:       newIndex(),
		writing:   make(map[Key]*write),
	}
	s.chunks.New = func() any {
		b := make([]byte, readChunkSize)
		return &b
	}
	if err := s.fs.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("blockstore: create dir: %w", err)
	}
	lock, err := s.fs.Lock(filepath.Join(o.Dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("blockstore: dir %s is in use: %w", o.Dir, err)
	}
	s.lock = lock
	if err := s.open(ctx); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	start := time.Now() // only for the log line: the real time it took
	for _, dir := range []string{s.tmpDir, s.blocksDir} {
		if err := s.fs.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("blockstore: create dir: %w", err)
		}
	}
	if err := s.removeTemps(); err != nil {
		return err
	}
	if err := s.rebuild(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	victims, _ := s.reserveLocked(0)
	s.mu.Unlock()
	s.removeVictims(victims)
	st := s.Stats()
	s.log.Info("blockstore opened", "dir", s.opts.Dir, "blocks", st.Blocks, "bytes", st.Bytes,
		"capacity_bytes", st.CapacityBytes, "dropped", st.Dropped, "evicted", st.Evictions,
		"duration", time.Since(start))
	return nil
}

// removeTemps removes the temporary files of Puts a previous process did
// not finish.
func (s *Store) removeTemps() error {
	ents, err := s.fs.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("blockstore: list temporary files: %w", err)
	}
	for _, de := range ents {
		name := filepath.Join(s.tmpDir, de.Name())
		if err := s.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blockstore: remove temporary file: %w", err)
		}
	}
	if len(ents) > 0 {
		s.log.Info("blockstore removed leftover temporary files", "count", len(ents))
	}
	return nil
}

// Has reports whether k is in the store and its size, from the index
// alone: it does no I/O and does not count as a use of the block. It
// reports false on a closed store.
func (s *Store) Has(k Key) (size int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	e, ok := s.idx.get(k)
	if !ok {
		return 0, false
	}
	return e.size, true
}

// Delete removes k from the store. Deleting a block that is not there is
// not an error.
func (s *Store) Delete(ctx context.Context, k Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := newBlockID(k)
	stripe := s.stripe(id)
	stripe.Lock()
	defer stripe.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	e, ok := s.idx.get(k)
	if ok {
		s.idx.remove(e)
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	if !ok {
		return nil
	}
	if err := s.fs.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blockstore: delete %s: %w", k, err)
	}
	return nil
}

// Close waits for the Gets, Puts and Deletes in progress and releases the
// directory. Later calls fail with ErrClosed; Close itself may be called
// again.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("blockstore: release lock: %w", err)
	}
	return nil
}

// path returns the name of id's block file.
func (s *Store) path(id blockID) string {
	name := id.String()
	return filepath.Join(s.blocksDir, name[:2], name)
}

func (s *Store) stripe(id blockID) *sync.Mutex { return &s.stripes[id[0]] }

// forget drops e from the index if it is still there and, if removeFile,
// removes its file. It reports whether e was still in the index.
func (s *Store) forget(e *entry, removeFile bool) bool {
	stripe := s.stripe(e.id)
	stripe.Lock()
	defer stripe.Unlock()
	s.mu.Lock()
	cur, ok := s.idx.get(e.key)
	same := ok && cur == e
	if same {
		s.idx.remove(e)
	}
	s.mu.Unlock()
	if same && removeFile {
		if err := s.fs.Remove(s.path(e.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("blockstore cannot remove block file", "key", e.key, "err", err)
		}
	}
	return same
}
