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

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/redact"
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
			err = fmt.Errorf("load format: %w", redact.Error(err, metaURL))
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
	// Paths say, for each path given, in order, where it led and how many
	// files it matched.
	Paths []PathResolution
	// SkippedLinks counts the symlinks found in the directories walked
	// that were not followed (see Resolve); Skipped holds the first
	// MaxSkippedLinks of them.
	SkippedLinks int
	Skipped      []SkippedLink
}

// PathResolution is what one path given to Resolve led to.
type PathResolution struct {
	Path string `json:"path"` // as given
	// Resolved is the path it names, absolute within the volume, clean
	// and without symlinks: Path cleaned when no symlink was followed.
	Resolved string `json:"resolved"`
	// Symlinks is how many symlinks were followed to get there.
	Symlinks int `json:"symlinks,omitempty"`
	// Files is how many regular files the path matched, those other
	// paths matched too included: 0 for an empty directory, a FIFO, or a
	// tree whose symlinks were all skipped.
	Files int `json:"files"`
	// SkippedLinks counts the symlinks in its tree that were not
	// followed.
	SkippedLinks int `json:"skipped_links,omitempty"`
}

// Followed tells whether p went through a symlink.
func (p PathResolution) Followed() bool { return p.Symlinks > 0 }

// SkippedLink is a symlink found in a directory Resolve walked and did
// not follow.
type SkippedLink struct {
	Link   string `json:"link"`   // its path in the volume
	Target string `json:"target"` // its target, as stored
	Reason string `json:"reason"` // why it was not followed
}

// MaxSkippedLinks is the most SkippedLinks a Resolution lists (it counts
// them all).
const MaxSkippedLinks = 100

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
// names the path; so is one that goes through a file.
//
// Symlinks in a path given are followed, at any component, the last one
// included, as open(2) would: "/models/m/latest" with latest -> v2 resolves
// to "/models/m/v2". A target is read from the link's directory or, when
// absolute, from the volume's root, component by component: a symlink among
// its components is followed before the next one, and ".." goes to the
// parent of the directory actually reached (physically, as the kernel does;
// only the paths given are cleaned lexically, before any lookup). A symlink
// that is dangling is an error wrapping ErrPathNotFound, one whose target
// climbs above the volume's root one wrapping ErrSymlinkOutside, more than
// MaxSymlinkHops symlinks or MaxPathComponents components walked for one
// path one wrapping ErrSymlinkLoop, and a target that names no path one
// wrapping ErrSymlinkTarget; each names the path, the symlink and its
// target (quoted, cut to MaxQuotedName bytes). A call needing more than
// MaxResolveLookups metadata lookups fails with ErrResolveBudget. Symlinks
// resolved are remembered for the rest of the call. Resolution.Paths tells
// where each path led.
//
// Symlinks found in a directory being walked are resolved the same way and
// followed only when they lead inside the tree being walked (the directory
// the path given led to): their files are then part of the tree anyway
// and are counted once, under their own path. The others (leading out of
// the tree, dangling, looping) are skipped, counted in SkippedLinks and
// listed in Skipped: a warm-up of a tree never reaches outside it. Other
// non-regular files (FIFOs, sockets, devices) are skipped too. The trash
// directory is walked only when asked for by path ("/.trash").
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
		dirs:       make(map[meta.Ino]int),
		inodes:     make(map[meta.Ino][]Block),
		seen:       make(map[string]bool),
		links:      make(map[linkKey]*resolvedLink),
		maxLookups: maxResolveLookups,
		res:        &Resolution{Files: []FileBlocks{}, Blocks: []Block{}, Paths: make([]PathResolution, 0, len(paths)), Skipped: []SkippedLink{}},
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

	files   map[string]bool      // paths already in res.Files
	dirs    map[meta.Ino]int     // directories walked (or being walked): files found below
	tree    string               // the tree being walked, as resolved
	skipped int                  // symlinks skipped in it
	inodes  map[meta.Ino][]Block // blocks of files already read (hard links)
	seen    map[string]bool      // keys of the blocks in res.Blocks
	res     *Resolution

	links      map[linkKey]*resolvedLink // symlinks resolved
	lookups    int                       // Lookup and ReadLink calls made
	maxLookups int                       // and the most allowed
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
	w, err := r.follow(orig, parts, nil)
	if err != nil {
		return err
	}
	r.skipped = 0
	var n int
	switch w.attr.Typ {
	case meta.TypeDirectory:
		r.tree = w.path
		n, err = r.walkDir(w.path, w.ino, w.stack)
	case meta.TypeFile:
		n, err = r.addFile(w.path, w.ino, &w.attr)
	}
	if err != nil {
		return err
	}
	// Special files match nothing.
	r.res.Paths = append(r.res.Paths, PathResolution{Path: orig, Resolved: w.path, Symlinks: w.hops, Files: n, SkippedLinks: r.skipped})
	return nil
}

// walkDir adds the files below the directory ino, at dir, and returns how
// many there are (those added before included). anc are the components
// from the root to dir, dir's included, for resolving symlinks found.
func (r *resolver) walkDir(dir string, ino meta.Ino, anc []step) (int, error) {
	if n, ok := r.dirs[ino]; ok {
		return n, nil
	}
	r.dirs[ino] = 0
	if err := r.check(); err != nil {
		return 0, err
	}
	var entries []*meta.Entry
	st := r.m.Readdir(r.mctx, ino, 1, &entries)
	if st == syscall.ENOENT {
		return 0, nil // removed since it was looked up
	}
	if st != 0 {
		return 0, r.metaErr(fmt.Sprintf("readdir %q", dir), st)
	}
	// Sorted, so that Blocks' first-seen order does not depend on the
	// engine's.
	slices.SortFunc(entries, func(a, b *meta.Entry) int { return strings.Compare(string(a.Name), string(b.Name)) })
	found := 0
	for _, e := range entries {
		name := string(e.Name)
		if name == "." || name == ".." || e.Attr == nil {
			continue
		}
		p := path.Join(dir, name)
		switch e.Attr.Typ {
		case meta.TypeDirectory:
			// Clipped: each child appends to a copy of its own.
			n, err := r.walkDir(p, e.Inode, append(slices.Clip(anc), step{name: name, ino: e.Inode, attr: *e.Attr}))
			if err != nil {
				return 0, err
			}
			found += n
		case meta.TypeSymlink:
			// Followed only into the tree, whose files are counted
			// where they are: nothing to count here.
			if err := r.followInTree(p, anc, name); err != nil {
				return 0, err
			}
		case meta.TypeFile:
			attr := e.Attr
			if !attr.Full {
				// The engine listed the entry but had no attributes for
				// it: ask again, it may just have been removed.
				if err := r.check(); err != nil {
					return 0, err
				}
				attr = new(meta.Attr)
				if st := r.m.GetAttr(r.mctx, e.Inode, attr); st == syscall.ENOENT {
					continue
				} else if st != 0 {
					return 0, r.metaErr(fmt.Sprintf("getattr %q", p), st)
				}
				if attr.Typ != meta.TypeFile {
					continue
				}
			}
			n, err := r.addFile(p, e.Inode, attr)
			if err != nil {
				return 0, err
			}
			found += n
		}
	}
	r.dirs[ino] = found
	return found, nil
}

// addFile adds the regular file ino at p, unless it is there already, and
// returns how many files it is: 1, or 0 if it vanished.
func (r *resolver) addFile(p string, ino meta.Ino, attr *meta.Attr) (int, error) {
	if r.files[p] {
		return 1, nil
	}
	blocks, ok := r.inodes[ino]
	if ok {
		blocks = slices.Clone(blocks) // another link to the same inode: no shared backing arrays
	} else {
		var err error
		blocks, err = r.fileBlocks(p, ino, attr.Length)
		if errors.Is(err, errVanished) {
			return 0, nil
		}
		if err != nil {
			return 0, err
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
	return 1, nil
}

// fileBlocks returns the blocks holding the visible data of the file ino of
// the given length, in file order, each once.
func (r *resolver) fileBlocks(p string, ino meta.Ino, length uint64) ([]Block, error) {
	var out []Block
	own := make(map[blockkey.Key]bool)
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
				bk := blockkey.Key{SliceID: s.Id, Index: int(i), Size: int(min(bs, uint64(s.Size)-i*bs)), HashPrefix: r.hashPrefix}
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
