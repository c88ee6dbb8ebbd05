package juice

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/juicedata/juicefs/pkg/meta"
)

// walked is where resolver.follow got to.
type walked struct {
	stack  []step    // the components of path, walked
	path   string    // real path: absolute, clean, no symlink components
	ino    meta.Ino  // what it names
	attr   meta.Attr // its attributes (only Typ for the root)
	hops   int       // symlinks followed
	target string    // the first symlink's target, as stored ("" if none)
}

// step is a component walked: a directory, or (last) anything but a
// symlink.
type step struct {
	name string
	ino  meta.Ino
	attr meta.Attr
}

// follow walks parts, the components of a clean path absolute within the
// volume, from the root, following every symlink on the way (the last
// component's too) up to MaxSymlinkHops of them, and returns the real path
// it leads to and what that is. orig is the path for errors, which name
// the symlink that led astray and its target. The returned walked is never
// nil: on an error, its target is the first symlink's.
//
// stack, if not empty, holds the first components of parts already walked
// (directories); follow owns it.
func (r *resolver) follow(orig string, parts []string, stack []step) (*walked, error) {
	w := &walked{}
	var link, target string // the last symlink followed
	here := func(n int) string {
		var b strings.Builder
		for _, s := range stack[:n] {
			b.WriteString("/")
			b.WriteString(s.name)
		}
		if b.Len() == 0 {
			return "/"
		}
		return b.String()
	}
	via := func(open, close string) string {
		if link == "" {
			return ""
		}
		return fmt.Sprintf("%sreached through symlink %q -> %q%s", open, link, target, close)
	}
	for i := len(stack); i < len(parts); {
		ino, typ := meta.Ino(meta.RootInode), uint8(meta.TypeDirectory)
		if n := len(stack); n > 0 {
			ino, typ = stack[n-1].ino, stack[n-1].attr.Typ
		}
		if typ != meta.TypeDirectory {
			return w, fmt.Errorf("resolve %q: %w (%q is a file%s)", orig, ErrPathNotFound, here(len(stack)), via(", ", ""))
		}
		if err := r.check(); err != nil {
			return w, err
		}
		name := parts[i]
		var next meta.Ino
		var attr meta.Attr
		st := r.m.Lookup(r.mctx, ino, name, &next, &attr, false)
		if st == syscall.ENOENT {
			if link == "" {
				return w, fmt.Errorf("resolve %q: %w", orig, ErrPathNotFound)
			}
			return w, fmt.Errorf("resolve %q: %w: %q does not exist%s", orig, ErrPathNotFound, strings.TrimSuffix(here(len(stack)), "/")+"/"+name, via(" (", ")"))
		}
		if st != 0 {
			return w, r.metaErr(fmt.Sprintf("lookup %q", strings.TrimSuffix(here(len(stack)), "/")+"/"+name), st)
		}
		if attr.Typ != meta.TypeSymlink {
			stack = append(stack, step{name: name, ino: next, attr: attr})
			i++
			continue
		}
		dir := here(len(stack))
		lp := strings.TrimSuffix(dir, "/") + "/" + name
		if w.hops == MaxSymlinkHops {
			return w, fmt.Errorf("resolve %q: %w: followed %d symlinks, the last %q -> %q, and %q is one more (a loop?)",
				orig, ErrSymlinkLoop, MaxSymlinkHops, link, target, lp)
		}
		if err := r.check(); err != nil {
			return w, err
		}
		var buf []byte
		if st := r.m.ReadLink(r.mctx, next, &buf); st == syscall.ENOENT {
			return w, fmt.Errorf("resolve %q: %w: symlink %q vanished", orig, ErrPathNotFound, lp)
		} else if st != 0 {
			return w, r.metaErr(fmt.Sprintf("readlink %q", lp), st)
		}
		w.hops++
		link, target = lp, string(buf)
		if w.hops == 1 {
			w.target = target
		}
		dirParts := make([]string, len(stack))
		for k, s := range stack {
			dirParts[k] = s.name
		}
		tparts, err := symlinkTargetParts(dirParts, target)
		if err != nil {
			return w, fmt.Errorf("resolve %q: symlink %q -> %q: %w", orig, lp, target, err)
		}
		rest := parts[i+1:]
		parts = append(tparts, rest...)
		// The components the new path shares with the walk so far are
		// walked already.
		k := 0
		for k < len(stack) && k < len(parts) && stack[k].name == parts[k] {
			k++
		}
		stack, i = stack[:k], k
	}
	w.path, w.stack = here(len(stack)), stack
	if n := len(stack); n > 0 {
		w.ino, w.attr = stack[n-1].ino, stack[n-1].attr
	} else {
		w.ino, w.attr.Typ = meta.RootInode, meta.TypeDirectory
	}
	return w, nil
}

// followInTree resolves the symlink name in the directory whose
// components from the root are anc, at p, found walking r.tree, and adds
// what it leads to if that is inside the tree; otherwise it records it as
// skipped. Errors about the volume's contents (dangling, loops, targets
// leaving the volume) skip the link; others (the metadata engine failing,
// ctx ending) are returned.
func (r *resolver) followInTree(p string, anc []step, name string) error {
	parts := make([]string, len(anc), len(anc)+1)
	for i, s := range anc {
		parts[i] = s.name
	}
	w, err := r.follow(p, append(parts, name), slices.Clone(anc))
	switch {
	case err == nil && !within(r.tree, w.path):
		r.skip(p, w.target, fmt.Sprintf("leads to %q, outside the tree %q", w.path, r.tree))
	case err == nil:
		// Inside the tree, so walked with it (and counted there); adding
		// it here too costs nothing but keeps what it names whatever the
		// order of the walk.
		switch w.attr.Typ {
		case meta.TypeDirectory:
			_, err = r.walkDir(w.path, w.ino, w.stack)
		case meta.TypeFile:
			_, err = r.addFile(w.path, w.ino, &w.attr)
		}
		return err
	case errors.Is(err, ErrPathNotFound), errors.Is(err, ErrSymlinkLoop), errors.Is(err, ErrSymlinkOutside), errors.Is(err, ErrSymlinkTarget):
		r.skip(p, w.target, strings.TrimPrefix(err.Error(), fmt.Sprintf("resolve %q: ", p)))
	default:
		return err
	}
	return nil
}

func (r *resolver) skip(link, target, reason string) {
	r.skipped++
	r.res.SkippedLinks++
	if len(r.res.Skipped) < MaxSkippedLinks {
		r.res.Skipped = append(r.res.Skipped, SkippedLink{Link: link, Target: target, Reason: reason})
	}
}
