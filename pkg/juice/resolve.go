package juice

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/juicedata/juicefs/pkg/meta"
)

// ErrPathNotFound is returned (wrapped, with the path) by Resolve for a
// path that names nothing in the volume.
var ErrPathNotFound = errors.New("path not found")

// ErrInvalidPath is returned (wrapped, with the path) by Resolve for a path
// that is not absolute within the volume or that climbs above its root.
var ErrInvalidPath = errors.New("invalid path")

// OpenMeta opens a read-only client of the metadata engine at metaURL and
// returns it with the volume's format, secrets decrypted. The client runs no
// background jobs and opens no session: it only reads. The caller closes it
// with m.Shutdown().
//
// Errors never contain metaURL, which may hold a password.
func OpenMeta(ctx context.Context, metaURL string) (meta.Meta, *meta.Format, error) {
	quietJuiceFS()
	if err := validateMetaURL(metaURL); err != nil {
		return nil, nil, err
	}
	conf := meta.DefaultConf()
	conf.ReadOnly = true
	conf.NoBGJob = true
	conf.Retries = 3
	type result struct {
		m   meta.Meta
		f   *meta.Format
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		// After guardFatal (OpenMetaGuarded), a URL JuiceFS cannot take
		// panics here instead of ending the process.
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(fatalPanic); !ok {
					panic(p)
				}
				if r.m != nil {
					r.m.Shutdown()
				}
				done <- result{err: ErrMetaRejected}
			}
		}()
		r.m = meta.NewClient(metaURL, conf)
		f, err := r.m.Load(true)
		if err == nil {
			if err = f.Decrypt(); err != nil {
				err = fmt.Errorf("decrypt format secrets: %w", err)
			}
		} else if strings.Contains(err.Error(), "database is not formatted") {
			err = ErrNotFormatted
		} else {
			// The engine's own error names the server, never the URL's
			// password; keep only its class.
			err = fmt.Errorf("load format: %w", redactURL(err, metaURL))
		}
		if err != nil {
			r.m.Shutdown()
			r.m = nil
		}
		r.f, r.err = f, err
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, nil, fmt.Errorf("open metadata: %w", r.err)
		}
		return r.m, r.f, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.m != nil {
				r.m.Shutdown()
			}
		}()
		return nil, nil, fmt.Errorf("open metadata: %w", ctx.Err())
	}
}

// Block is one data block of a JuiceFS volume.
type Block struct {
	// Key is the object key as the object store holds it, without the
	// "<volume name>/" prefix, e.g. chunks/0/1/1234_0_4194304.
	Key string
	// Size is the block's plaintext size: the size field of Key.
	Size int64
}

// FileBlocks is one regular file and the blocks that hold its visible data.
type FileBlocks struct {
	Path   string  // absolute within the volume, cleaned
	Size   int64   // file length in bytes
	Blocks []Block // in file order, each block once
}

// Resolution is the outcome of Resolve.
type Resolution struct {
	Files  []FileBlocks // regular files found, each path once, sorted by path
	Blocks []Block      // all distinct blocks across Files, in first-seen order
	Bytes  int64        // sum of the sizes of Blocks
}

// Resolve walks paths in the volume whose metadata client is m and whose
// format is format, and returns the data blocks that hold the visible data
// of every regular file found: ringcache's warm-up goes paths → inodes →
// chunks → slices → block keys, straight from the metadata engine.
//
// Each path is absolute within the volume ("/" is its root) and is cleaned
// lexically; a relative path, or one whose ".." climbs above the root, is
// an error wrapping ErrInvalidPath. A path naming a regular file resolves
// to that file, a directory to every regular file below it, recursively.
// A path that does not exist is an error wrapping ErrPathNotFound that
// names the path; so is one that goes through a file or a symlink.
//
// Symlinks are never followed: a symlink, whether named by a path or found
// in a directory, is counted nowhere (neither its target nor the link).
// Other non-regular files (FIFOs, sockets, devices) are skipped too. The
// trash directory is walked only when asked for by path ("/.trash").
//
// Only blocks that still hold visible bytes are returned: a slice that was
// partly overwritten contributes only the blocks under its visible pieces,
// holes and data beyond the file's length contribute nothing, and files of
// zero length have no blocks. Blocks are deduplicated across files (paths
// given twice, a directory and a file inside it, hard links, clones).
//
// The volume may change while Resolve runs: a file or directory that
// disappears during the walk is left out. ctx is checked before every
// metadata call and passed to the metadata engine.
func Resolve(ctx context.Context, m meta.Meta, format *meta.Format, paths []string) (*Resolution, error) {
	if m == nil || format == nil {
		return nil, errors.New("resolve: nil metadata client or format")
	}
	if format.BlockSize <= 0 {
		return nil, fmt.Errorf("resolve: invalid block size %d KiB in format", format.BlockSize)
	}
	// Validate every path before any metadata call.
	cleaned := make([][]string, len(paths))
	for i, p := range paths {
		parts, err := splitVolumePath(p)
		if err != nil {
			return nil, err
		}
		cleaned[i] = parts
	}
	mctx := meta.WrapContext(ctx) // uid 0, gid 0: permissions never stop a walk
	defer mctx.Cancel()
	r := &resolver{
		ctx:        ctx,
		mctx:       mctx,
		m:          m,
		bs:         int64(format.BlockSize) << 10,
		hashPrefix: format.HashPrefix,
		files:      make(map[string]bool),
		dirs:       make(map[meta.Ino]bool),
		inodes:     make(map[meta.Ino][]Block),
		seen:       make(map[string]bool),
		res:        &Resolution{Files: []FileBlocks{}, Blocks: []Block{}},
	}
	for i, parts := range cleaned {
		if err := r.resolvePath(paths[i], parts); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(r.res.Files, func(a, b FileBlocks) int { return strings.Compare(a.Path, b.Path) })
	return r.res, nil
}

// splitVolumePath returns the components of p, an absolute path within the
// volume, after lexical cleaning.
func splitVolumePath(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("resolve: %w: empty path", ErrInvalidPath)
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("resolve %q: %w: not absolute (paths are absolute within the volume, \"/\" is its root)", p, ErrInvalidPath)
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return nil, fmt.Errorf("resolve %q: %w: \"..\" climbs above the volume root", p, ErrInvalidPath)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	return parts, nil
}

type resolver struct {
	ctx        context.Context
	mctx       meta.Context
	m          meta.Meta
	bs         int64
	hashPrefix bool

	files  map[string]bool      // paths already in res.Files
	dirs   map[meta.Ino]bool    // directories already walked
	inodes map[meta.Ino][]Block // blocks of files already read (hard links)
	seen   map[string]bool      // keys of the blocks in res.Blocks
	res    *Resolution
}

// errVanished marks a file or directory removed while Resolve walked.
var errVanished = errors.New("vanished")

// check returns the context's error, if any, as Resolve returns it.
func (r *resolver) check() error {
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	return nil
}

// metaErr turns a failed metadata call into an error, preferring the
// context's error: a cancelled call fails with whatever errno the engine
// maps its error to.
func (r *resolver) metaErr(op string, st syscall.Errno) error {
	if err := r.check(); err != nil {
		return err
	}
	return fmt.Errorf("resolve: %s: %w", op, st)
}

func (r *resolver) resolvePath(orig string, parts []string) error {
	clean := "/" + strings.Join(parts, "/")
	ino := meta.RootInode
	var attr meta.Attr
	attr.Typ = meta.TypeDirectory // the root always is one
	for i, name := range parts {
		if attr.Typ != meta.TypeDirectory {
			what := "a file"
			if attr.Typ == meta.TypeSymlink {
				what = "a symlink, which resolve does not follow"
			}
			return fmt.Errorf("resolve %q: %w (%q is %s)", orig, ErrPathNotFound, "/"+strings.Join(parts[:i], "/"), what)
		}
		if err := r.check(); err != nil {
			return err
		}
		var next meta.Ino
		st := r.m.Lookup(r.mctx, ino, name, &next, &attr, false)
		if st == syscall.ENOENT {
			return fmt.Errorf("resolve %q: %w", orig, ErrPathNotFound)
		}
		if st != 0 {
			return r.metaErr(fmt.Sprintf("lookup %q", "/"+strings.Join(parts[:i+1], "/")), st)
		}
		ino = next
	}
	switch attr.Typ {
	case meta.TypeDirectory:
		return r.walkDir(clean, ino)
	case meta.TypeFile:
		return r.addFile(clean, ino, &attr)
	}
	return nil // symlinks and special files are counted nowhere
}

func (r *resolver) walkDir(dir string, ino meta.Ino) error {
	if r.dirs[ino] {
		return nil
	}
	r.dirs[ino] = true
	if err := r.check(); err != nil {
		return err
	}
	var entries []*meta.Entry
	st := r.m.Readdir(r.mctx, ino, 1, &entries)
	if st == syscall.ENOENT {
		return nil // removed since it was looked up
	}
	if st != 0 {
		return r.metaErr(fmt.Sprintf("readdir %q", dir), st)
	}
	// Sorted, so that Blocks' first-seen order does not depend on the
	// engine's.
	slices.SortFunc(entries, func(a, b *meta.Entry) int { return strings.Compare(string(a.Name), string(b.Name)) })
	for _, e := range entries {
		name := string(e.Name)
		if name == "." || name == ".." || e.Attr == nil {
			continue
		}
		p := path.Join(dir, name)
		switch e.Attr.Typ {
		case meta.TypeDirectory:
			if err := r.walkDir(p, e.Inode); err != nil {
				return err
			}
		case meta.TypeFile:
			attr := e.Attr
			if !attr.Full {
				// The engine listed the entry but had no attributes for
				// it: ask again, it may just have been removed.
				if err := r.check(); err != nil {
					return err
				}
				attr = new(meta.Attr)
				if st := r.m.GetAttr(r.mctx, e.Inode, attr); st == syscall.ENOENT {
					continue
				} else if st != 0 {
					return r.metaErr(fmt.Sprintf("getattr %q", p), st)
				}
				if attr.Typ != meta.TypeFile {
					continue
				}
			}
			if err := r.addFile(p, e.Inode, attr); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *resolver) addFile(p string, ino meta.Ino, attr *meta.Attr) error {
	if r.files[p] {
		return nil
	}
	blocks, ok := r.inodes[ino]
	if ok {
		blocks = slices.Clone(blocks) // another link to the same inode: no shared backing arrays
	} else {
		var err error
		blocks, err = r.fileBlocks(p, ino, attr.Length)
		if errors.Is(err, errVanished) {
			return nil
		}
		if err != nil {
			return err
		}
		r.inodes[ino] = blocks
	}
	r.files[p] = true
	r.res.Files = append(r.res.Files, FileBlocks{Path: p, Size: int64(attr.Length), Blocks: blocks})
	for _, b := range blocks {
		if r.seen[b.Key] {
			continue
		}
		r.seen[b.Key] = true
		r.res.Blocks = append(r.res.Blocks, b)
		r.res.Bytes += b.Size
	}
	return nil
}

// fileBlocks returns the blocks holding the visible data of the file ino of
// the given length, in file order, each once.
func (r *resolver) fileBlocks(p string, ino meta.Ino, length uint64) ([]Block, error) {
	var out []Block
	own := make(map[BlockKey]bool)
	bs := uint64(r.bs)
	nchunks := (length + meta.ChunkSize - 1) / meta.ChunkSize
	var ss []meta.Slice
	for indx := uint64(0); indx < nchunks; indx++ {
		if err := r.check(); err != nil {
			return nil, err
		}
		if indx > 1<<32-1 {
			return nil, fmt.Errorf("resolve: %q: length %d is beyond the chunks juicefs addresses", p, length)
		}
		st := r.m.Read(r.mctx, ino, uint32(indx), &ss)
		if st == syscall.ENOENT {
			return nil, errVanished
		}
		if st != 0 {
			return nil, r.metaErr(fmt.Sprintf("read chunk %d of %q", indx, p), st)
		}
		// Bytes of this chunk within the file's length: slices may
		// still reach past it.
		visible := min(uint64(meta.ChunkSize), length-indx*meta.ChunkSize)
		var pos uint64 // of the current piece within the chunk
		for _, s := range ss {
			start := pos
			pos += uint64(s.Len)
			if start >= visible {
				break
			}
			if s.Id == 0 || s.Len == 0 {
				continue // a hole
			}
			n := min(uint64(s.Len), visible-start)
			if uint64(s.Off)+uint64(s.Len) > uint64(s.Size) {
				return nil, fmt.Errorf("resolve: %q: chunk %d: slice %d piece [%d, %d) is beyond its size %d",
					p, indx, s.Id, s.Off, uint64(s.Off)+uint64(s.Len), s.Size)
			}
			first := uint64(s.Off) / bs
			last := (uint64(s.Off) + n - 1) / bs
			for i := first; i <= last; i++ {
				bk := BlockKey{SliceID: s.Id, Index: int(i), Size: int(min(bs, uint64(s.Size)-i*bs)), HashPrefix: r.hashPrefix}
				if own[bk] {
					continue
				}
				own[bk] = true
				out = append(out, Block{Key: bk.String(), Size: int64(bk.Size)})
			}
		}
	}
	return out, nil
}
