package juice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/utils"
)

// ErrSymlink is returned (wrapped, with the path) by LookupDir for a path
// with a symlink among its components.
var ErrSymlink = errors.New("path goes through a symlink")

// ErrNotDir is returned (wrapped, with the path) by LookupDir for a path
// that names something other than a directory.
var ErrNotDir = errors.New("not a directory")

// ErrMetaRejected is returned by OpenMetaGuarded when the JuiceFS metadata
// client refused the URL so badly that it would have ended the process.
var ErrMetaRejected = errors.New("the JuiceFS metadata client rejected the metadata URL")

// fatalPanic is what JuiceFS's logger panics with, instead of exiting the
// process, after guardFatal.
type fatalPanic struct{}

var guardOnce sync.Once

// guardFatal makes JuiceFS's library logger harmless to a long-running
// service that opens metadata URLs it is handed by others: a Fatal (which
// JuiceFS's meta.NewClient calls for URLs it cannot parse) panics instead of
// calling os.Exit, and the library's log lines, whose inner errors may
// repeat a URL with its password, are discarded.
//
// It changes the process-wide JuiceFS logger, so only processes that never
// run a JuiceFS mount call it (the CSI controller and node services; the
// mount process does not).
func guardFatal() {
	guardOnce.Do(func() {
		quietJuiceFS()
		l := utils.GetLogger("juicefs")
		l.SetOutput(io.Discard)
		l.ExitFunc = func(int) { panic(fatalPanic{}) }
	})
}

// OpenMetaGuarded is OpenMeta for services that must survive any URL: a
// URL that would make the JuiceFS client exit the process is an error
// wrapping ErrMetaRejected instead, and JuiceFS's own log lines are
// discarded for the whole process (see guardFatal). Errors never contain
// metaURL.
func OpenMetaGuarded(ctx context.Context, metaURL string) (meta.Meta, *meta.Format, error) {
	guardFatal()
	return OpenMeta(ctx, metaURL)
}

// LookupDir walks p, an absolute path within the volume, component by
// component from the root with m, without following symlinks, and returns
// the inode of the directory it names.
//
// p must be absolute and clean, without "." or ".." components (callers
// validate paths first; anything else is an error wrapping ErrInvalidPath).
// A component that does not exist is an error wrapping ErrPathNotFound, a
// symlink component one wrapping ErrSymlink, and a path whose last component
// is not a directory (or that goes through a file) one wrapping ErrNotDir;
// each names the offending prefix of p.
func LookupDir(ctx context.Context, m meta.Meta, p string) (meta.Ino, error) {
	if m == nil {
		return 0, errors.New("lookup: nil metadata client")
	}
	if !strings.HasPrefix(p, "/") {
		return 0, fmt.Errorf("lookup %q: %w: not absolute", p, ErrInvalidPath)
	}
	mctx := meta.WrapContext(ctx)
	defer mctx.Cancel()
	ino := meta.RootInode
	var walked string
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue
		}
		if name == "." || name == ".." {
			return 0, fmt.Errorf("lookup %q: %w: %q component", p, ErrInvalidPath, name)
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("lookup %q: %w", p, err)
		}
		walked += "/" + name
		var next meta.Ino
		var attr meta.Attr
		st := m.Lookup(mctx, ino, name, &next, &attr, false)
		switch {
		case st == syscall.ENOENT:
			return 0, fmt.Errorf("%q: %w", walked, ErrPathNotFound)
		case st == syscall.ENOTDIR:
			return 0, fmt.Errorf("%q: %w", walked, ErrNotDir)
		case st != 0:
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("lookup %q: %w", p, err)
			}
			return 0, fmt.Errorf("lookup %q: %w", walked, st)
		}
		switch attr.Typ {
		case meta.TypeDirectory:
		case meta.TypeSymlink:
			return 0, fmt.Errorf("%q: %w", walked, ErrSymlink)
		default:
			return 0, fmt.Errorf("%q: %w", walked, ErrNotDir)
		}
		ino = next
	}
	return ino, nil
}
