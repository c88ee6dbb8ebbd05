package juice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/meta"

	"github.com/ringcache/ringcache/pkg/juice"
)

// countingMeta counts the metadata lookups Resolve makes.
type countingMeta struct {
	meta.Meta
	lookups, readlinks atomic.Int64
}

func (c *countingMeta) Lookup(ctx meta.Context, parent meta.Ino, name string, inode *meta.Ino, attr *meta.Attr, checkPerm bool) syscall.Errno {
	c.lookups.Add(1)
	return c.Meta.Lookup(ctx, parent, name, inode, attr, checkPerm)
}

func (c *countingMeta) ReadLink(ctx meta.Context, inode meta.Ino, path *[]byte) syscall.Errno {
	c.readlinks.Add(1)
	return c.Meta.ReadLink(ctx, inode, path)
}

func (c *countingMeta) reset() int64 {
	return c.lookups.Swap(0) + c.readlinks.Swap(0)
}

func (v *memVolume) symlink(parent meta.Ino, name, target string) {
	v.t.Helper()
	var ino meta.Ino
	var attr meta.Attr
	if st := v.m.Symlink(v.ctx, parent, name, target, &ino, &attr); st != 0 {
		v.t.Fatalf("symlink %s: %v", name, st)
	}
}

// TestResolveBudget: symlink chains cannot multiply metadata lookups. The
// review's tree, scaled down (1 file, 10 links each heading a chain of 40
// symlinks whose targets walk 500 directories down, 501 lookups a hop)
// cost 200,000 lookups; now each link stops after MaxPathComponents
// components (an ErrSymlinkLoop naming the bound) and the tree costs at
// most 10 times that. Links sharing
// a chain resolve it once. A Resolve call needing more than its budget of
// lookups fails with ErrResolveBudget, having made no more than that.
func TestResolveBudget(t *testing.T) {
	v := newMemVolume(t, 1024, false)
	cm := &countingMeta{Meta: v.ro}
	resolve := func(paths ...string) (*juice.Resolution, error) {
		return juice.Resolve(context.Background(), cm, v.format, paths)
	}
	root := meta.Ino(meta.RootInode)
	tdir := v.mkdir(root, "t")
	v.write(v.create(tdir, "f"), 0, 1000)
	chains := v.mkdir(root, "chains")
	v.mkdir(chains, "a")
	v.write(v.create(chains, "f"), 0, 2000)
	// Two directories 500 deep, /chains/{p,q}/d/.../d, holding ten chains
	// of symlinks whose absolute targets walk all the way down the other:
	// c<i>_<k> -> /chains/{q,p}/d/.../d/c<i>_<k+1>, 39 of them, the last
	// to /t/f. With /t/l<i> -> its chain's head: 40 hops and 20,000
	// lookups for each link.
	const depth, nchains, hops = 500, 10, juice.MaxSymlinkHops - 1
	var deep [2]meta.Ino
	var dpath [2]string
	for j, name := range []string{"p", "q"} {
		deep[j], dpath[j] = v.mkdir(chains, name), "/chains/"+name
		for range depth {
			deep[j] = v.mkdir(deep[j], "d")
			dpath[j] += "/d"
		}
	}
	for i := range nchains {
		for k := range hops {
			next := fmt.Sprintf("%s/c%d_%d", dpath[(k+1)%2], i, k+1)
			if k == hops-1 {
				next = "/t/f"
			}
			v.symlink(deep[k%2], fmt.Sprintf("c%d_%d", i, k), next)
		}
		v.symlink(tdir, fmt.Sprintf("l%d", i), fmt.Sprintf("%s/c%d_0", dpath[0], i))
	}

	start := time.Now()
	_, err := resolve("/t/l0")
	n := cm.reset()
	t.Logf("one link: %d lookups in %v: %.300v", n, time.Since(start), err)
	if !errors.Is(err, juice.ErrSymlinkLoop) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d path components", juice.MaxPathComponents)) {
		t.Errorf("/t/l0: %.300v, want ErrSymlinkLoop naming the bound", err)
	}
	if n > juice.MaxPathComponents+juice.MaxSymlinkHops+1 {
		t.Errorf("/t/l0: %d lookups, more than %d components and %d readlinks", n, juice.MaxPathComponents, juice.MaxSymlinkHops)
	}

	start = time.Now()
	r, err := resolve("/t")
	n = cm.reset()
	t.Logf("the tree: %d lookups in %v", n, time.Since(start))
	if err != nil || len(r.Files) != 1 || r.SkippedLinks != nchains {
		t.Fatalf("/t: %.300v, %.300v", err, r)
	}
	if max := int64(nchains * (juice.MaxPathComponents + juice.MaxSymlinkHops + 2)); n > max {
		t.Errorf("/t: %d lookups, more than %d", n, max)
	}
	if s := r.Skipped[0]; !strings.Contains(s.Reason, "too many levels of symbolic links") || !strings.Contains(s.Reason, "path components") {
		t.Errorf("skipped %.300v", s)
	}

	// Ten links into one chain of 20 hops (within the bounds): the chain
	// is walked once.
	u := v.mkdir(root, "u")
	for k := range 20 {
		next := fmt.Sprintf("s%d", k+1)
		if k == 19 {
			next = "f"
		}
		v.symlink(chains, fmt.Sprintf("s%d", k), strings.Repeat("a/../", 50)+next)
	}
	for i := range nchains {
		v.symlink(u, fmt.Sprintf("l%d", i), "../chains/s0")
	}
	r, err = resolve("/chains/s0")
	one := cm.reset()
	if err != nil || r.Paths[0].Resolved != "/chains/f" || r.Paths[0].Symlinks != 20 {
		t.Fatalf("/chains/s0: %v, %+v", err, r)
	}
	r, err = resolve("/u")
	n = cm.reset()
	t.Logf("one chain %d lookups; ten links into it %d", one, n)
	if err != nil || r.SkippedLinks != nchains || !strings.Contains(r.Skipped[0].Reason, `leads to "/chains/f"`) {
		t.Fatalf("/u: %v, %+v", err, r)
	}
	if n > one+int64(nchains*4) {
		t.Errorf("/u: %d lookups for ten links into a chain costing %d", n, one)
	}

	// The budget of the call.
	defer juice.SetMaxResolveLookups(500)()
	_, err = resolve("/chains/s0")
	n = cm.reset()
	if !errors.Is(err, juice.ErrResolveBudget) || !strings.Contains(err.Error(), "need more than 500 metadata lookups") || n > 500 {
		t.Errorf("budget 500: %d lookups, %v", n, err)
	}
	t.Logf("budget 500: %d lookups: %v", n, err)
}

// TestResolveErrorsClipNames: errors quote names from the volume clipped
// to MaxQuotedName bytes, so a 4096-byte target full of bytes that
// quoting expands makes a short error.
func TestResolveErrorsClipNames(t *testing.T) {
	v := newMemVolume(t, 1024, false)
	long := strings.Repeat("\x1b", juice.MaxSymlinkTarget)
	v.symlink(meta.RootInode, "l", long)
	_, err := juice.Resolve(context.Background(), v.ro, v.format, []string{"/l"})
	if !errors.Is(err, juice.ErrPathNotFound) || len(err.Error()) > 4*(4*juice.MaxQuotedName+8)+200 || !strings.Contains(err.Error(), `\x1b\x1b"…`) || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("%d bytes: %.600q", len(err.Error()), err)
	}
	t.Logf("%d bytes (target %d bytes)", len(err.Error()), len(long))
}
