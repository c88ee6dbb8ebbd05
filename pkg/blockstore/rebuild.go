package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// rebuild fills the index from the headers of the block files, reading the
// fan-out directories in parallel, and removes the files that are not
// valid blocks. The blocks' LRU order is their files' mtime order.
func (s *Store) rebuild(ctx context.Context) error {
	ents, err := s.fs.ReadDir(s.blocksDir)
	if err != nil {
		return fmt.Errorf("blockstore: rebuild index: %w", err)
	}
	var dirs []string
	for _, de := range ents {
		path := filepath.Join(s.blocksDir, de.Name())
		if !de.IsDir() || !isFanoutName(de.Name()) {
			s.log.Warn("blockstore ignoring unexpected directory entry", "path", path)
			continue
		}
		dirs = append(dirs, path)
	}
	workers := min(max(8, 4*runtime.GOMAXPROCS(0)), 64, len(dirs))
	jobs := make(chan string)
	found := make([][]*entry, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for dir := range jobs {
				found[i] = append(found[i], s.loadDir(dir)...)
			}
		})
	}
	for _, dir := range dirs {
		if ctx.Err() != nil {
			break
		}
		jobs <- dir
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: rebuild index: %w", err)
	}
	all := slices.Concat(found...)
	slices.SortFunc(all, func(a, b *entry) int { return a.touched.Compare(b.touched) })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range all { // oldest first: each add makes e the most recent
		s.idx.add(e)
	}
	return nil
}

// loadDir returns the blocks of one fan-out directory, removing invalid
// files.
func (s *Store) loadDir(dir string) []*entry {
	ents, err := s.fs.ReadDir(dir)
	if err != nil {
		s.log.Error("blockstore cannot list block directory; skipping it", "dir", dir, "err", err)
		return nil
	}
	var blocks []*entry
	for _, de := range ents {
		path := filepath.Join(dir, de.Name())
		if !de.Type().IsRegular() {
			s.log.Warn("blockstore ignoring unexpected directory entry", "path", path)
			continue
		}
		e, err := s.loadFile(path, filepath.Base(dir), de.Name())
		var oe *openError
		switch {
		case err == nil:
			blocks = append(blocks, e)
		case errors.As(err, &oe):
			s.log.Error("blockstore cannot open block file; skipping it", "path", path, "err", err)
		default:
			s.stats.dropped.Add(1)
			s.log.Warn("blockstore removing invalid block file", "path", path, "err", err)
			if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Error("blockstore cannot remove invalid block file", "path", path, "err", err)
			}
		}
	}
	return blocks
}

// loadFile checks that the file path, named name in fan-out directory
// fanout, is a valid block file, from its header, and returns its entry.
func (s *Store) loadFile(path, fanout, name string) (*entry, error) {
	id, ok := parseBlockID(name)
	if !ok || name[:2] != fanout {
		return nil, errors.New("not a block file name")
	}
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, &openError{err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h, err := readHeader(f, fi.Size())
	if err != nil {
		return nil, err
	}
	if newBlockID(h.key) != id {
		return nil, fmt.Errorf("file name does not match its block's key %s", h.key)
	}
	return &entry{
		key:      h.key,
		id:       id,
		size:     h.dataLen,
		diskSize: fi.Size(),
		meta:     h.meta,
		touched:  fi.ModTime(),
	}, nil
}
