package juice_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/juicedata/juicefs/pkg/chunk"
	"github.com/juicedata/juicefs/pkg/fs"
	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"
	"github.com/juicedata/juicefs/pkg/vfs"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/juice"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// ---------------------------------------------------------------------
// Slice arithmetic against JuiceFS's in-memory metadata engine: slices are
// placed with meta.Write exactly where a test wants them, no objects.
// ---------------------------------------------------------------------

type memVolume struct {
	t      *testing.T
	m      meta.Meta // read-write, places slices
	ro     meta.Meta // read-only, from juice.OpenMeta, resolves
	format *meta.Format
	ctx    meta.Context
}

// newMemVolume creates a volume in a SQLite database of its own. (JuiceFS's
// memkv engine would do, but it shares its format through a fixed file in
// /tmp across processes.)
func newMemVolume(t *testing.T, blockSizeKiB int, hashPrefix bool) *memVolume {
	t.Helper()
	metaURL := "sqlite3://" + t.TempDir() + "/meta.db"
	conf := meta.DefaultConf()
	conf.NoBGJob = true
	m := meta.NewClient(metaURL, conf)
	f := &meta.Format{Name: "mem", UUID: uuid.New().String(), Storage: "mem", BlockSize: blockSizeKiB,
		HashPrefix: hashPrefix, DirStats: true, MetaVersion: meta.MaxVersion}
	if err := m.Init(f, false); err != nil {
		t.Fatal(err)
	}
	if err := m.NewSession(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.CloseSession(); m.Shutdown() })
	// Resolve through a read-only client, as ringcache does: a read-write
	// one could start compacting chunks with many slices.
	ro, format, err := juice.OpenMeta(context.Background(), metaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Shutdown() })
	if format.UUID != f.UUID || format.BlockSize != blockSizeKiB || format.HashPrefix != hashPrefix {
		t.Fatalf("OpenMeta format %+v, want %+v", format, f)
	}
	return &memVolume{t: t, m: m, ro: ro, format: format, ctx: meta.Background()}
}

func (v *memVolume) mkdir(parent meta.Ino, name string) meta.Ino {
	v.t.Helper()
	var ino meta.Ino
	var attr meta.Attr
	if st := v.m.Mkdir(v.ctx, parent, name, 0o755, 0, 0, &ino, &attr); st != 0 {
		v.t.Fatalf("mkdir %s: %v", name, st)
	}
	return ino
}

func (v *memVolume) create(parent meta.Ino, name string) meta.Ino {
	v.t.Helper()
	var ino meta.Ino
	var attr meta.Attr
	if st := v.m.Create(v.ctx, parent, name, 0o644, 0, 0, &ino, &attr); st != 0 {
		v.t.Fatalf("create %s: %v", name, st)
	}
	v.m.Close(v.ctx, ino)
	return ino
}

// write places a new slice of size bytes at byte off of the file (within
// one chunk) and returns its ID.
func (v *memVolume) write(ino meta.Ino, off uint64, size uint32) uint64 {
	v.t.Helper()
	var id uint64
	if st := v.m.NewSlice(v.ctx, &id); st != 0 {
		v.t.Fatalf("new slice: %v", st)
	}
	indx := uint32(off / meta.ChunkSize)
	if (off+uint64(size)-1)/meta.ChunkSize != uint64(indx) {
		v.t.Fatalf("slice [%d, +%d) crosses a chunk boundary", off, size)
	}
	if st := v.m.Write(v.ctx, ino, indx, uint32(off%meta.ChunkSize), meta.Slice{Id: id, Size: size, Len: size}, time.Now()); st != 0 {
		v.t.Fatalf("write: %v", st)
	}
	return id
}

func (v *memVolume) resolve(paths ...string) *juice.Resolution {
	v.t.Helper()
	r, err := juice.Resolve(context.Background(), v.ro, v.format, paths)
	if err != nil {
		v.t.Fatalf("resolve %q: %v", paths, err)
	}
	return r
}

func (v *memVolume) key(id uint64, indx, size int) juice.Block {
	return juice.Block{Key: blockkey.Key{SliceID: id, Index: indx, Size: size, HashPrefix: v.format.HashPrefix}.String(), Size: int64(size)}
}

func wantBlocks(t *testing.T, what string, got, want []juice.Block) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: blocks\n got  %v\n want %v", what, got, want)
	}
}

// checkResolution checks the invariants every Resolution keeps.
func checkResolution(t *testing.T, r *juice.Resolution) {
	t.Helper()
	var sum int64
	seen := map[string]bool{}
	for _, b := range r.Blocks {
		if seen[b.Key] {
			t.Errorf("block %s listed twice", b.Key)
		}
		seen[b.Key] = true
		sum += b.Size
		bk, err := blockkey.Parse(b.Key)
		if err != nil || int64(bk.Size) != b.Size {
			t.Errorf("block %+v: parse %+v, %v", b, bk, err)
		}
	}
	if sum != r.Bytes {
		t.Errorf("Bytes = %d, blocks sum to %d", r.Bytes, sum)
	}
	inFiles := map[string]bool{}
	for i, f := range r.Files {
		if i > 0 && r.Files[i-1].Path >= f.Path {
			t.Errorf("files not sorted or not distinct: %q then %q", r.Files[i-1].Path, f.Path)
		}
		for _, b := range f.Blocks {
			if !seen[b.Key] {
				t.Errorf("file %s block %s not in Blocks", f.Path, b.Key)
			}
			inFiles[b.Key] = true
		}
	}
	if len(inFiles) != len(seen) {
		t.Errorf("%d blocks in Blocks, %d in Files", len(seen), len(inFiles))
	}
}

func TestResolveVisibleSlices(t *testing.T) {
	for _, hp := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashprefix=%v", hp), func(t *testing.T) {
			v := newMemVolume(t, 1024, hp) // 1 MiB blocks
			d := v.mkdir(meta.RootInode, "d")

			// A 4 MiB slice, then overwrites of parts of it.
			f := v.create(d, "f")
			a := v.write(f, 0, 4*mib)
			wantBlocks(t, "one slice", v.resolve("/d/f").Blocks,
				[]juice.Block{v.key(a, 0, mib), v.key(a, 1, mib), v.key(a, 2, mib), v.key(a, 3, mib)})

			b := v.write(f, mib, mib) // hides block 1 of a entirely
			wantBlocks(t, "block 1 overwritten", v.resolve("/d/f").Blocks,
				[]juice.Block{v.key(a, 0, mib), v.key(b, 0, mib), v.key(a, 2, mib), v.key(a, 3, mib)})

			c := v.write(f, 2*mib+256*kib, 512*kib) // inside block 2 of a, which stays partly visible
			r := v.resolve("/d/f")
			wantBlocks(t, "middle of block 2 overwritten", r.Blocks,
				[]juice.Block{v.key(a, 0, mib), v.key(b, 0, mib), v.key(a, 2, mib), v.key(c, 0, 512*kib), v.key(a, 3, mib)})
			if len(r.Files) != 1 || r.Files[0].Path != "/d/f" || r.Files[0].Size != 4*mib || r.Bytes != 4*mib+512*kib {
				t.Errorf("resolution = %+v", r)
			}
			checkResolution(t, r)

			// Truncating hides everything past the new length.
			var attr meta.Attr
			if st := v.m.Truncate(v.ctx, f, 0, mib+mib/2, &attr, false); st != 0 {
				t.Fatal(st)
			}
			wantBlocks(t, "truncated to 1.5 MiB", v.resolve("/d/f").Blocks,
				[]juice.Block{v.key(a, 0, mib), v.key(b, 0, mib)})

			// A full overwrite leaves none of the old slices.
			e := v.write(f, 0, 2*mib+100)
			wantBlocks(t, "fully overwritten", v.resolve("/d/f").Blocks,
				[]juice.Block{v.key(e, 0, mib), v.key(e, 1, mib), v.key(e, 2, 100)})

			// Slices on both sides of a chunk boundary.
			g := v.create(d, "g")
			g1 := v.write(g, meta.ChunkSize-mib, mib)
			g2 := v.write(g, meta.ChunkSize, 2*mib+mib/2)
			r = v.resolve("/d/g")
			wantBlocks(t, "two chunks", r.Blocks,
				[]juice.Block{v.key(g1, 0, mib), v.key(g2, 0, mib), v.key(g2, 1, mib), v.key(g2, 2, mib/2)})
			if r.Files[0].Size != meta.ChunkSize+2*mib+mib/2 {
				t.Errorf("size %d", r.Files[0].Size)
			}

			// A sparse file: holes and missing chunks hold no blocks.
			s := v.create(d, "sparse")
			s1 := v.write(s, 2*meta.ChunkSize+10*mib+mib/2, 100*kib)
			wantBlocks(t, "sparse", v.resolve("/d/sparse").Blocks, []juice.Block{v.key(s1, 0, 100*kib)})

			// An empty file: listed, no blocks.
			v.create(d, "empty")
			r = v.resolve("/d/empty")
			if len(r.Files) != 1 || r.Files[0].Size != 0 || len(r.Files[0].Blocks) != 0 || len(r.Blocks) != 0 {
				t.Errorf("empty file: %+v", r)
			}

			// A hard link and a symlink.
			if st := v.m.Link(v.ctx, f, meta.RootInode, "hard", &attr); st != 0 {
				t.Fatal(st)
			}
			var lino meta.Ino
			if st := v.m.Symlink(v.ctx, d, "link", "/d/g", &lino, &attr); st != 0 {
				t.Fatal(st)
			}
			// A symlink named is followed; one found in the tree walked
			// leads into the tree, so its file counts once, where it is.
			r = v.resolve("/d/link")
			if len(r.Files) != 1 || r.Files[0].Path != "/d/g" || len(r.Paths) != 1 || r.Paths[0].Resolved != "/d/g" || r.Paths[0].Symlinks != 1 {
				t.Errorf("symlink resolved to %+v", r)
			}
			wantBlocks(t, "symlink to /d/g", r.Blocks, v.resolve("/d/g").Blocks)
			_, err := juice.Resolve(context.Background(), v.ro, v.format, []string{"/d/link/x"})
			if !errors.Is(err, juice.ErrPathNotFound) || !strings.Contains(err.Error(), `"/d/g" is a file, reached through symlink "/d/link" -> "/d/g"`) {
				t.Errorf("path through a symlink to a file: %v", err)
			}
			all := v.resolve("/")
			checkResolution(t, all)
			var paths []string
			for _, f := range all.Files {
				paths = append(paths, f.Path)
			}
			if want := []string{"/d/empty", "/d/f", "/d/g", "/d/sparse", "/hard"}; !slices.Equal(paths, want) {
				t.Errorf("files %q, want %q", paths, want)
			}
			wantBytes := int64(2*mib+100) + mib + 2*mib + mib/2 + 100*kib // the hard link counts once
			if all.Bytes != wantBytes || len(all.Blocks) != 3+4+1 {
				t.Errorf("all: %d bytes in %d blocks, want %d in 8", all.Bytes, len(all.Blocks), wantBytes)
			}

			// Every way of naming the same files gives the same blocks.
			again := v.resolve("/d/f", "/d", "/d/./f", "//d/f", "/d/../d/g", "/hard", "/")
			var againPaths []string
			for _, f := range again.Files {
				againPaths = append(againPaths, f.Path)
			}
			if !slices.Equal(againPaths, paths) {
				t.Errorf("files %q, want %q", againPaths, paths)
			}
			if again.Bytes != all.Bytes || len(again.Blocks) != len(all.Blocks) {
				t.Errorf("dedup: %d bytes in %d blocks, want %d in %d", again.Bytes, len(again.Blocks), all.Bytes, len(all.Blocks))
			}
			checkResolution(t, again)
			// Blocks come in first-seen order: the first path's first.
			wantBlocks(t, "first-seen order", again.Blocks[:3], []juice.Block{v.key(e, 0, mib), v.key(e, 1, mib), v.key(e, 2, 100)})
		})
	}
}

func TestResolveErrors(t *testing.T) {
	v := newMemVolume(t, 4096, false)
	d := v.mkdir(meta.RootInode, "dir")
	v.create(d, "file")
	ctx := context.Background()

	for _, tc := range []struct {
		path string
		want error
		msg  string
	}{
		{"/missing", juice.ErrPathNotFound, `"/missing"`},
		{"/dir/missing/deeper", juice.ErrPathNotFound, `"/dir/missing/deeper"`},
		{"/dir/file/x", juice.ErrPathNotFound, "is a file"},
		{"dir/file", juice.ErrInvalidPath, "not absolute"},
		{"./dir", juice.ErrInvalidPath, "not absolute"},
		{"", juice.ErrInvalidPath, "empty"},
		{"/../dir", juice.ErrInvalidPath, "above the volume root"},
		{"/dir/../../dir", juice.ErrInvalidPath, "above the volume root"},
	} {
		// A bad path among good ones fails the whole call.
		_, err := juice.Resolve(ctx, v.ro, v.format, []string{"/dir", tc.path})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("resolve %q: got %v, want %v mentioning %s", tc.path, err, tc.want, tc.msg)
		}
	}

	// Lexical cleaning that stays within the root is fine.
	for _, p := range []string{"/", "/dir/..", "/./dir/../dir/file", "/dir/"} {
		if _, err := juice.Resolve(ctx, v.ro, v.format, []string{p}); err != nil {
			t.Errorf("resolve %q: %v", p, err)
		}
	}
	r, err := juice.Resolve(ctx, v.ro, v.format, nil)
	if err != nil || len(r.Files) != 0 || len(r.Blocks) != 0 || r.Bytes != 0 {
		t.Errorf("no paths: %+v, %v", r, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := juice.Resolve(cctx, v.ro, v.format, []string{"/"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := juice.Resolve(ctx, v.ro, nil, []string{"/"}); err == nil {
		t.Error("nil format accepted")
	}
}

// ---------------------------------------------------------------------
// Real volumes: Redis metadata, MinIO objects, files written through the
// JuiceFS client libraries.
// ---------------------------------------------------------------------

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223 // incompressible enough for these tests
		b[i] = byte(x >> 24)
	}
	return b
}

// listBlocks returns the objects under chunks/ in the volume's origin, by
// key, with their stored sizes.
func listBlocks(t *testing.T, format *meta.Format) map[string]int64 {
	t.Helper()
	origin, err := juice.OpenOrigin(format)
	if err != nil {
		t.Fatal(err)
	}
	defer object.Shutdown(origin)
	objs, err := object.ListAll(origin, "chunks/", "", true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for o := range objs {
		if o == nil {
			t.Fatal("listing failed")
		}
		if !o.IsDir() {
			out[o.Key()] = o.Size()
		}
	}
	return out
}

func keySet(bs []juice.Block) map[string]int64 {
	m := make(map[string]int64, len(bs))
	for _, b := range bs {
		m[b.Key] = b.Size
	}
	return m
}

func sortedKeys(m map[string]int64) []string {
	return slices.Sorted(maps.Keys(m))
}

type realEnv struct {
	redis *realtest.Redis
	minio *realtest.MinIO
}

func (e *realEnv) format(t *testing.T, ctx context.Context, name string, fo juicetest.FormatOptions) (string, *meta.Format) {
	t.Helper()
	fo.Name = name
	fo.MetaURL = e.redis.NewDB(t)
	fo.Bucket = "http://" + e.minio.Addr + "/resolve-test"
	e.ensureBucket(t, fo.Bucket)
	fo.AccessKey, fo.SecretKey = e.minio.AccessKey, e.minio.SecretKey
	f, err := juicetest.Format(ctx, fo)
	if err != nil {
		t.Fatal(err)
	}
	return fo.MetaURL, f
}

// ensureBucket creates the bucket, retrying while a just-started MinIO
// refuses. (juicetest.Format falls back to Put(key, nil) when Create fails,
// which panics in JuiceFS's S3 client.)
func (e *realEnv) ensureBucket(t *testing.T, bucket string) {
	t.Helper()
	blob, err := object.CreateStorage("minio", bucket, e.minio.AccessKey, e.minio.SecretKey, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := blob.Create()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create bucket: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func openMeta(t *testing.T, ctx context.Context, metaURL string) (meta.Meta, *meta.Format) {
	t.Helper()
	m, f, err := juice.OpenMeta(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m, f
}

func TestResolveRealVolume(t *testing.T) {
	env := &realEnv{redis: realtest.StartRedis(t), minio: realtest.StartMinIO(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name string
		fo   juicetest.FormatOptions
		big  int // a file crossing a chunk boundary
	}{
		{"plain", juicetest.FormatOptions{BlockSize: 1024}, 70 * mib},
		{"hashprefix-lz4", juicetest.FormatOptions{BlockSize: 1024, HashPrefix: true, Compression: "lz4"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			metaURL, wf := env.format(t, ctx, tc.name, tc.fo)
			files := map[string]int{
				"/t/empty":             0,
				"/t/small":             kib,
				"/t/one":               mib,
				"/t/two-and-a-half":    2*mib + mib/2,
				"/t/sub/deeper/odd":    3*mib + 17,
				"/top":                 100 * kib,
				"/t/sub/deeper/empty2": 0,
			}
			if tc.big > 0 {
				files["/t/sub/big"] = tc.big
			}
			w, err := juicetest.OpenWriter(ctx, metaURL)
			if err != nil {
				t.Fatal(err)
			}
			seed := byte(0)
			for _, p := range slices.Sorted(maps.Keys(files)) {
				seed++
				if err := w.WriteFile(p, pattern(files[p], seed)); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()

			m, format := openMeta(t, ctx, metaURL)
			if format.UUID != wf.UUID || format.BlockSize != 1024 || format.HashPrefix != tc.fo.HashPrefix {
				t.Fatalf("format %+v", format)
			}
			objects := listBlocks(t, format)

			r, err := juice.Resolve(ctx, m, format, []string{"/"})
			if err != nil {
				t.Fatal(err)
			}
			checkResolution(t, r)

			// Nothing was overwritten: the blocks are exactly the objects.
			got := keySet(r.Blocks)
			if !slices.Equal(sortedKeys(got), sortedKeys(objects)) {
				t.Fatalf("resolved %d blocks, origin holds %d objects\n resolved %v\n objects  %v",
					len(got), len(objects), sortedKeys(got), sortedKeys(objects))
			}
			var total int64
			for _, f := range r.Files {
				want, ok := files[f.Path]
				if !ok || f.Size != int64(want) {
					t.Errorf("file %s size %d, want %d (known %v)", f.Path, f.Size, want, ok)
				}
				var sum int64
				for _, b := range f.Blocks {
					sum += b.Size
				}
				if sum != f.Size { // each byte in exactly one block
					t.Errorf("file %s: blocks hold %d bytes, file has %d", f.Path, sum, f.Size)
				}
				if n := (f.Size + mib - 1) / mib; int64(len(f.Blocks)) != n {
					t.Errorf("file %s: %d blocks, want %d", f.Path, len(f.Blocks), n)
				}
				total += f.Size
			}
			if len(r.Files) != len(files) || r.Bytes != total {
				t.Errorf("%d files, %d bytes; want %d files, %d bytes", len(r.Files), r.Bytes, len(files), total)
			}
			for k, size := range got {
				bk, err := blockkey.Parse(k)
				if err != nil || bk.HashPrefix != tc.fo.HashPrefix || int64(bk.Size) != size {
					t.Errorf("key %s: %+v, %v", k, bk, err)
				}
				if tc.fo.Compression == "" && objects[k] != size {
					t.Errorf("key %s: resolved size %d, object size %d", k, size, objects[k])
				}
			}
			if tc.big > 0 {
				fb := r.Files[slices.IndexFunc(r.Files, func(f juice.FileBlocks) bool { return f.Path == "/t/sub/big" })]
				ids := map[uint64]bool{}
				for _, b := range fb.Blocks {
					bk, _ := blockkey.Parse(b.Key)
					ids[bk.SliceID] = true
				}
				if len(ids) < 2 { // a slice never crosses a chunk
					t.Errorf("big file in %d slices", len(ids))
				}
			}

			// Dedup: a file twice, a directory and files inside it.
			d, err := juice.Resolve(ctx, m, format, []string{"/t/one", "/t/one", "/t/sub", "/t/sub/deeper/odd", "/t", "/top", "/"})
			if err != nil {
				t.Fatal(err)
			}
			checkResolution(t, d)
			if len(d.Files) != len(r.Files) || d.Bytes != r.Bytes || len(d.Blocks) != len(r.Blocks) {
				t.Errorf("dedup: %d files %d bytes %d blocks; want %d %d %d",
					len(d.Files), d.Bytes, len(d.Blocks), len(r.Files), r.Bytes, len(r.Blocks))
			}
			if d.Blocks[0] != r.Files[slices.IndexFunc(r.Files, func(f juice.FileBlocks) bool { return f.Path == "/t/one" })].Blocks[0] {
				t.Errorf("first block %v is not /t/one's", d.Blocks[0])
			}

			// A subtree.
			s, err := juice.Resolve(ctx, m, format, []string{"/t/sub/deeper"})
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Files) != 2 || s.Files[0].Path != "/t/sub/deeper/empty2" || s.Files[1].Path != "/t/sub/deeper/odd" || s.Bytes != 3*mib+17 {
				t.Errorf("subtree: %+v", s.Files)
			}

			_, err = juice.Resolve(ctx, m, format, []string{"/t", "/t/nope"})
			if !errors.Is(err, juice.ErrPathNotFound) || !strings.Contains(err.Error(), "/t/nope") {
				t.Errorf("missing path: %v", err)
			}
		})
	}

	t.Run("open errors", func(t *testing.T) {
		_, _, err := juice.OpenMeta(ctx, "ftp://user:hunter2@host/1")
		if !errors.Is(err, juice.ErrBadMetaURL) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("bad scheme: %v", err)
		}
		_, _, err = juice.OpenMeta(ctx, env.redis.NewDB(t))
		if !errors.Is(err, juice.ErrNotFormatted) {
			t.Errorf("empty database: got %v, want ErrNotFormatted", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := juice.OpenMeta(cctx, env.redis.NewDB(t)); err == nil {
			t.Error("cancelled open succeeded")
		}
	})
}

// rwClient is a read-write JuiceFS client of a volume, as
// juicetest.OpenWriter opens one, for what juicetest.Writer does not offer:
// writes at an offset into an existing file, truncation, symlinks.
type rwClient struct {
	m  meta.Meta
	fs *fs.FileSystem
}

func openRW(t *testing.T, metaURL string) *rwClient {
	t.Helper()
	conf := meta.DefaultConf()
	conf.NoBGJob = true
	m := meta.NewClient(metaURL, conf)
	format, err := m.Load(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := format.Decrypt(); err != nil {
		t.Fatal(err)
	}
	blob, err := juice.OpenOrigin(format)
	if err != nil {
		t.Fatal(err)
	}
	cc := &chunk.Config{
		BlockSize: format.BlockSize * 1024, Compress: format.Compression, HashPrefix: format.HashPrefix,
		GetTimeout: time.Minute, PutTimeout: time.Minute, MaxUpload: 4, MaxRetries: 3,
		BufferSize: 64 << 20, CacheDir: "memory",
	}
	cc.SelfCheck(format.UUID)
	store := chunk.NewCachedStore(blob, *cc, nil)
	if err := m.NewSession(false); err != nil {
		t.Fatal(err)
	}
	vc := &vfs.Config{Meta: conf, Format: *format, Chunk: cc, AttrTimeout: time.Second, DirEntryTimeout: time.Second}
	vc.Format.RemoveSecret()
	jfs, err := fs.NewFileSystem(vc, m, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &rwClient{m: m, fs: jfs}
	t.Cleanup(func() { m.CloseSession(); m.Shutdown() })
	return c
}

func (c *rwClient) pwrite(t *testing.T, p string, data []byte, off int64) {
	t.Helper()
	ctx := meta.Background()
	f, e := c.fs.Open(ctx, p, vfs.MODE_MASK_W)
	if e != 0 {
		t.Fatalf("open %s: %v", p, e)
	}
	if n, e := f.Pwrite(ctx, data, off); e != 0 || n != len(data) {
		t.Fatalf("pwrite %s: %d, %v", p, n, e)
	}
	if e := f.Close(ctx); e != 0 {
		t.Fatalf("close %s: %v", p, e)
	}
}

func TestResolveRealOverwrite(t *testing.T) {
	env := &realEnv{redis: realtest.StartRedis(t), minio: realtest.StartMinIO(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	metaURL, _ := env.format(t, ctx, "overwrite", juicetest.FormatOptions{BlockSize: 1024})

	w, err := juicetest.OpenWriter(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("/ow/f", pattern(4*mib, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("/ow/g", pattern(mib, 2)); err != nil {
		t.Fatal(err)
	}
	w.Close()

	m, format := openMeta(t, ctx, metaURL)
	resolve := func(paths ...string) *juice.Resolution {
		t.Helper()
		r, err := juice.Resolve(ctx, m, format, paths)
		if err != nil {
			t.Fatal(err)
		}
		checkResolution(t, r)
		return r
	}
	// newKeys returns the objects written since before, sorted.
	newKeys := func(before map[string]int64) ([]string, map[string]int64) {
		t.Helper()
		now := listBlocks(t, format)
		var added []string
		for k := range now {
			if _, ok := before[k]; !ok {
				added = append(added, k)
			}
		}
		slices.Sort(added)
		return added, now
	}

	v0 := listBlocks(t, format)
	r0 := resolve("/ow/f")
	if len(r0.Blocks) != 4 {
		t.Fatalf("4 MiB file in %d blocks: %v", len(r0.Blocks), r0.Blocks)
	}
	old := r0.Blocks // a0..a3, one slice

	c := openRW(t, metaURL)

	// Overwrite block 1 exactly: a1 no longer holds visible data.
	c.pwrite(t, "/ow/f", pattern(mib, 3), mib)
	added, v1 := newKeys(v0)
	if len(added) != 1 {
		t.Fatalf("overwrite wrote %v", added)
	}
	r1 := resolve("/ow/f")
	want := []juice.Block{old[0], {Key: added[0], Size: mib}, old[2], old[3]}
	wantBlocks(t, "block 1 overwritten", r1.Blocks, want)
	if _, ok := v1[old[1].Key]; !ok {
		t.Errorf("hidden block %s no longer in the origin: the test proves nothing", old[1].Key)
	}

	// Overwrite the middle of block 2: a2 stays, partly visible.
	c.pwrite(t, "/ow/f", pattern(100*kib, 4), 2*mib+300*kib)
	added2, v2 := newKeys(v1)
	if len(added2) != 1 {
		t.Fatalf("overwrite wrote %v", added2)
	}
	r2 := resolve("/ow/f")
	wantBlocks(t, "middle of block 2 overwritten", r2.Blocks,
		[]juice.Block{old[0], {Key: added[0], Size: mib}, old[2], {Key: added2[0], Size: 100 * kib}, old[3]})

	// Truncate to 1.5 MiB: blocks past the length are not visible.
	if e := c.fs.Truncate(meta.Background(), "/ow/f", mib+mib/2); e != 0 {
		t.Fatal(e)
	}
	wantBlocks(t, "truncated", resolve("/ow/f").Blocks, []juice.Block{old[0], {Key: added[0], Size: mib}})

	// Overwrite everything: none of the earlier slices' blocks remain.
	c.pwrite(t, "/ow/f", pattern(3*mib, 5), 0)
	added3, v3 := newKeys(v2)
	r3 := resolve("/ow/f")
	if got := sortedKeys(keySet(r3.Blocks)); !slices.Equal(got, added3) || r3.Bytes != 3*mib {
		t.Errorf("fully overwritten: resolved %v (%d bytes), want the new objects %v", got, r3.Bytes, added3)
	}
	for _, k := range append(slices.Clone(added), added2...) {
		if _, ok := keySet(r3.Blocks)[k]; ok {
			t.Errorf("hidden block %s resolved", k)
		}
	}
	for _, b := range old {
		if _, ok := keySet(r3.Blocks)[b.Key]; ok {
			t.Errorf("hidden block %s resolved", b.Key)
		}
	}

	// A symlink named is followed; found in the tree, it leads into it
	// and its file counts once.
	if e := c.fs.Symlink(meta.Background(), "/ow/g", "/ow/link"); e != 0 {
		t.Fatal(e)
	}
	if r, g := resolve("/ow/link"), resolve("/ow/g"); len(r.Files) != 1 || r.Files[0].Path != "/ow/g" || !slices.Equal(r.Blocks, g.Blocks) {
		t.Errorf("symlink resolved: %+v, want %+v", r, g)
	}
	all := resolve("/")
	var paths []string
	for _, f := range all.Files {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, []string{"/ow/f", "/ow/g"}) || all.Bytes != 4*mib {
		t.Errorf("walk: files %q, %d bytes", paths, all.Bytes)
	}
	// The origin still holds every hidden block: the resolution is a strict
	// subset of it.
	for k := range keySet(all.Blocks) {
		if _, ok := v3[k]; !ok {
			t.Errorf("resolved %s, not in the origin", k)
		}
	}
	if len(v3) <= len(all.Blocks) {
		t.Errorf("origin holds %d objects, resolved %d: hidden blocks were not left out", len(v3), len(all.Blocks))
	}
}
