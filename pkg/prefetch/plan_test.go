package prefetch

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/juicedata/juicefs/pkg/meta"

	"github.com/ringcache/ringcache/pkg/juice"
)

func TestNewPlan(t *testing.T) {
	metaURL := "sqlite3://" + t.TempDir() + "/meta.db"
	conf := meta.DefaultConf()
	conf.NoBGJob = true
	m := meta.NewClient(metaURL, conf)
	f := &meta.Format{Name: "vol", UUID: uuid.New().String(), Storage: "mem", BlockSize: 1024, DirStats: true, MetaVersion: meta.MaxVersion}
	if err := m.Init(f, false); err != nil {
		t.Fatal(err)
	}
	if err := m.NewSession(false); err != nil {
		t.Fatal(err)
	}
	defer func() { m.CloseSession(); m.Shutdown() }()
	ctx := meta.Background()
	var dir, file meta.Ino
	var attr meta.Attr
	if st := m.Mkdir(ctx, meta.RootInode, "model", 0o755, 0, 0, &dir, &attr); st != 0 {
		t.Fatal(st)
	}
	if st := m.Create(ctx, dir, "weights", 0o644, 0, 0, &file, &attr); st != 0 {
		t.Fatal(st)
	}
	var id uint64
	if st := m.NewSlice(ctx, &id); st != 0 {
		t.Fatal(st)
	}
	const size = 2<<20 + 100 // two full 1 MiB blocks and a short one
	if st := m.Write(ctx, file, 0, 0, meta.Slice{Id: id, Size: size, Len: size}, time.Now()); st != 0 {
		t.Fatal(st)
	}

	ro, format, err := juice.OpenMeta(context.Background(), metaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Shutdown()
	p, err := NewPlan(context.Background(), ro, format, []string{"/model"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Volume != "vol" || p.VolumeUUID != f.UUID || len(p.Files) != 1 || p.Files[0].Path != "/model/weights" ||
		len(p.Blocks) != 3 || p.Bytes != size || p.Blocks[2].Size != 100 || len(p.Paths) != 1 {
		t.Errorf("plan = %+v", p)
	}
	if _, err := NewPlan(context.Background(), ro, format, []string{"/model", "/nope"}); !errors.Is(err, juice.ErrPathNotFound) {
		t.Errorf("missing path: %v, want ErrPathNotFound", err)
	}
	if _, err := NewPlan(context.Background(), ro, format, nil); err == nil {
		t.Error("no paths accepted")
	}

	// Paths that match no file: errors naming them, never empty plans.
	var empty, lino meta.Ino
	if st := m.Mkdir(ctx, meta.RootInode, "empty", 0o755, 0, 0, &empty, &attr); st != 0 {
		t.Fatal(st)
	}
	if st := m.Symlink(ctx, meta.RootInode, "latest", "model", &lino, &attr); st != 0 {
		t.Fatal(st)
	}
	if st := m.Symlink(ctx, meta.RootInode, "none", "empty", &lino, &attr); st != 0 {
		t.Fatal(st)
	}
	if st := m.Symlink(ctx, empty, "away", "../model/weights", &lino, &attr); st != 0 {
		t.Fatal(st)
	}
	if st := m.Mknod(ctx, meta.RootInode, "fifo", meta.TypeFIFO, 0o644, 0, 0, "", &lino, &attr); st != 0 {
		t.Fatal(st)
	}
	for _, tc := range []struct {
		paths []string
		msg   string
	}{
		{[]string{"/empty"}, `/empty (1 symlink in it skipped, e.g. /empty/away -> ../model/weights: leads to "/model/weights", outside the tree "/empty") matches no file`},
		{[]string{"/model", "/none"}, "/none -> /empty (1 symlink in it skipped"},
		{[]string{"/fifo"}, "/fifo matches no file"},
	} {
		_, err := NewPlan(context.Background(), ro, format, tc.paths)
		if !errors.Is(err, ErrNoFiles) || !IsInputError(err) || !IsPathError(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want ErrNoFiles with %q", tc.paths, err, tc.msg)
		}
	}
	// A symlink named: followed, and reported.
	p, err = NewPlan(context.Background(), ro, format, []string{"/latest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 1 || p.Files[0].Path != "/model/weights" || len(p.Blocks) != 3 || !slices.Equal(p.Links(), []string{"/latest -> /model"}) ||
		len(p.Resolved) != 1 || p.Resolved[0].Files != 1 {
		t.Errorf("plan of /latest = %+v, links %q", p, p.Links())
	}
}
