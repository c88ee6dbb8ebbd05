package prefetch

import (
	"context"
	"errors"
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
}
