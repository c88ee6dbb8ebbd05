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

// pathWalk is the state of resolving one path: what follow reports and
// what bounds it.
type pathWalk struct {
	orig   string // the path, for errors
	hops   int    // symlinks followed
	comps  int    // components walked, across every symlink target
	first  string // the first symlink's target
	link   string // the last symlink followed, and its target
	target string
}

// linkKey names a symlink in the directory it was found in: a relative
// target reads from there (a symlink may have hard links elsewhere).
type linkKey struct{ dir, ino meta.Ino }

// resolvedLink is a symlink resolved once in this Resolve call.
type resolvedLink struct {
	stack        []step // where it leads (not to be appended to)
	hops         int    // symlinks followed to get there, its own included
	own          string // its own target
	link, target string // the last of them
}

// follow walks parts, the components of a clean path absolute within the
// volume, from the root, following every symlink on the way (the last
// component's too) as open(2) does, and returns the real path it leads to
// and what that is. orig is the path for errors, which name the symlink
// that led astray and its target. The returned walked is never nil: on an
// error, its target is the first symlink's.
//
// A symlink's target is read physically: its components are walked from
// the link's directory (from the root when absolute), each symlink among
// them followed before the next component, and ".." goes to the parent of
// the directory actually reached, as the kernel does. One path may take at
// most MaxSymlinkHops symlinks and MaxPathComponents components walked in
// all (ErrSymlinkLoop); the Resolve call at most MaxResolveLookups
// metadata lookups (ErrResolveBudget). Symlinks resolved are remembered for
// the rest of the call, by inode and directory.
//
// stack, if not empty, holds the first components of parts already walked
// (directories); follow owns it.
func (r *resolver) follow(orig string, parts []string, stack []step) (*walked, error) {
	pw := &pathWalk{orig: orig}
	w := &walked{}
	stack, err := r.walk(pw, stack, parts[len(stack):], nil)
	w.hops, w.target = pw.hops, pw.first
	if err != nil {
		return w, err
	}
	w.path, w.stack = stackPath(stack), stack
	if n := len(stack); n > 0 {
		w.ino, w.attr = stack[n-1].ino, stack[n-1].attr
	} else {
		w.ino, w.attr.Typ = meta.RootInode, meta.TypeDirectory
	}
	return w, nil
}

// stackPath is the path of the components walked.
func stackPath(stack []step) string {
	if len(stack) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range stack {
		b.WriteString("/")
		b.WriteString(s.name)
	}
	return b.String()
}

// walk walks comps from stack (which it owns) and returns the stack
// reached. in is the symlink whose target comps are, nil for the path
// itself.
func (r *resolver) walk(pw *pathWalk, stack []step, comps []string, in *resolvedLink) ([]step, error) {
	via := func(open, close string) string {
		if pw.link == "" {
			return ""
		}
		return fmt.Sprintf("%sreached through symlink %s -> %s%s", open, QuoteName(pw.link), QuoteName(pw.target), close)
	}
	for _, name := range comps {
		if name == "" {
			continue
		}
		ino, typ := meta.Ino(meta.RootInode), uint8(meta.TypeDirectory)
		if n := len(stack); n > 0 {
			ino, typ = stack[n-1].ino, stack[n-1].attr.Typ
		}
		if typ != meta.TypeDirectory {
			return stack, fmt.Errorf("resolve %s: %w (%s is a file%s)", QuoteName(pw.orig), ErrPathNotFound, QuoteName(stackPath(stack)), via(", ", ""))
		}
		if name == "." {
			continue
		}
		if pw.comps++; pw.comps > MaxPathComponents {
			return stack, fmt.Errorf("resolve %s: %w: walking it takes more than %d path components%s", QuoteName(pw.orig), ErrSymlinkLoop, MaxPathComponents, via(" (", ")"))
		}
		if name == ".." {
			if len(stack) == 0 {
				if in == nil { // splitVolumePath cleaned the path itself
					return stack, fmt.Errorf("resolve %s: %w: \"..\" climbs above the volume root", QuoteName(pw.orig), ErrInvalidPath)
				}
				return stack, fmt.Errorf("resolve %s: symlink %s -> %s: %w: \"..\" climbs above the volume root", QuoteName(pw.orig), QuoteName(in.link), QuoteName(in.target), ErrSymlinkOutside)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		lp := strings.TrimSuffix(stackPath(stack), "/") + "/" + name
		if err := r.meter(pw); err != nil {
			return stack, err
		}
		var next meta.Ino
		var attr meta.Attr
		st := r.m.Lookup(r.mctx, ino, name, &next, &attr, false)
		if st == syscall.ENOENT {
			if pw.link == "" {
				return stack, fmt.Errorf("resolve %s: %w", QuoteName(pw.orig), ErrPathNotFound)
			}
			return stack, fmt.Errorf("resolve %s: %w: %s does not exist%s", QuoteName(pw.orig), ErrPathNotFound, QuoteName(lp), via(" (", ")"))
		}
		if st != 0 {
			return stack, r.metaErr("lookup "+QuoteName(lp), st)
		}
		if attr.Typ != meta.TypeSymlink {
			stack = append(stack, step{name: name, ino: next, attr: attr})
			continue
		}
		var err error
		if stack, err = r.symlink(pw, stack, ino, next, lp); err != nil {
			return stack, err
		}
	}
	return stack, nil
}

// symlink resolves the symlink ino, at lp in the directory dir whose
// components are stack (which it owns), and returns the stack it leads
// to.
func (r *resolver) symlink(pw *pathWalk, stack []step, dir, ino meta.Ino, lp string) ([]step, error) {
	key := linkKey{dir: dir, ino: ino}
	if c, ok := r.links[key]; ok && pw.hops+c.hops <= MaxSymlinkHops {
		if pw.hops == 0 {
			pw.first = c.own
		}
		pw.hops += c.hops
		pw.link, pw.target = c.link, c.target
		return slices.Clone(c.stack), nil
	}
	if pw.hops == MaxSymlinkHops {
		return stack, fmt.Errorf("resolve %s: %w: followed %d symlinks, the last %s -> %s, and %s is one more (a loop?)",
			QuoteName(pw.orig), ErrSymlinkLoop, MaxSymlinkHops, QuoteName(pw.link), QuoteName(pw.target), QuoteName(lp))
	}
	if err := r.meter(pw); err != nil {
		return stack, err
	}
	var buf []byte
	if st := r.m.ReadLink(r.mctx, ino, &buf); st == syscall.ENOENT {
		return stack, fmt.Errorf("resolve %s: %w: symlink %s vanished", QuoteName(pw.orig), ErrPathNotFound, QuoteName(lp))
	} else if st != 0 {
		return stack, r.metaErr("readlink "+QuoteName(lp), st)
	}
	target := string(buf)
	pw.hops++
	h0 := pw.hops
	pw.link, pw.target = lp, target
	if pw.hops == 1 {
		pw.first = target
	}
	if err := checkSymlinkTarget(target); err != nil {
		return stack, fmt.Errorf("resolve %s: symlink %s -> %s: %w", QuoteName(pw.orig), QuoteName(lp), QuoteName(target), err)
	}
	if strings.HasPrefix(target, "/") {
		stack = stack[:0:0]
	}
	stack, err := r.walk(pw, stack, strings.Split(target, "/"), &resolvedLink{link: lp, target: target})
	if err != nil {
		return stack, err
	}
	r.links[key] = &resolvedLink{stack: slices.Clone(stack), hops: pw.hops - h0 + 1, own: target, link: pw.link, target: pw.target}
	return stack, nil
}

// meter counts one metadata lookup against the budget of the Resolve
// call, and checks ctx.
func (r *resolver) meter(pw *pathWalk) error {
	if err := r.check(); err != nil {
		return err
	}
	if r.lookups++; r.lookups > r.maxLookups {
		return fmt.Errorf("resolve %s: %w: the paths and the symlinks they reach need more than %d metadata lookups", QuoteName(pw.orig), ErrResolveBudget, r.maxLookups)
	}
	return nil
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
		r.skip(p, w.target, fmt.Sprintf("leads to %s, outside the tree %s", QuoteName(w.path), QuoteName(r.tree)))
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
		r.skip(p, w.target, strings.TrimPrefix(err.Error(), "resolve "+QuoteName(p)+": "))
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
