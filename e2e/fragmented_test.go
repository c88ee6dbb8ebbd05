package e2e

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/juicetest"
)

// fragmentedFile is a file written in many open-write-close passes by a
// read-write JuiceFS client, with the bytes a correct file system shows.
type fragmentedFile struct {
	path   string
	want   []byte
	passes int
}

// writeFragmented writes juicetest.FragmentedPasses(seed, size) to p in
// the volume at metaURL and applies the same passes to a local file for
// the expected bytes.
func writeFragmented(t *testing.T, metaURL, p string, seed uint64, size int64) fragmentedFile {
	t.Helper()
	passes, err := juicetest.FragmentedPasses(seed, size)
	if err != nil {
		t.Fatal(err)
	}
	want, err := juicetest.ApplyPasses(filepath.Join(t.TempDir(), "expected"), passes)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(want)) != size {
		t.Fatalf("local file has %d bytes after the passes, want %d", len(want), size)
	}
	w, err := juicetest.OpenWriter(context.Background(), metaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	if err := w.WritePasses(p, passes); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: %d MiB in %d open-write-close passes in %v", p, size>>20, len(passes), time.Since(start).Round(time.Millisecond))
	return fragmentedFile{path: p, want: want, passes: len(passes)}
}

// readFragmented reads the whole file through a mount of its directory
// and returns "" when the bytes are right, else a description of the
// first wrong byte and how many are wrong.
func readFragmented(t *testing.T, m *mount, f fragmentedFile) string {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(m.dir, path.Base(f.path)))
	if err != nil {
		t.Fatalf("read %s through %s: %v", f.path, m.dir, err)
	}
	if sha(got) == sha(f.want) {
		return ""
	}
	if len(got) != len(f.want) {
		return fmt.Sprintf("sha256 %s, want %s: %d bytes, want %d", sha(got), sha(f.want), len(got), len(f.want))
	}
	first, wrong := -1, 0
	for i := range got {
		if got[i] != f.want[i] {
			if first < 0 {
				first = i
			}
			wrong++
		}
	}
	chunk := first / juicetest.ChunkSize
	return fmt.Sprintf("sha256 %s, want %s: %d bytes wrong, first at %d (chunk %d +%d): got %q want %q",
		sha(got)[:12], sha(f.want)[:12], wrong, first, chunk, first-chunk*juicetest.ChunkSize,
		clip(got[first:], 24), clip(f.want[first:], 24))
}

func clip(b []byte, n int) []byte { return b[:min(n, len(b))] }

// checkFreshMounts mounts the file's directory count times, each a fresh
// read-only `csi mount` through the ring with no local cache, reads the
// whole file and unmounts. It fails the test for every wrong read.
func checkFreshMounts(t *testing.T, e *env, nodes []*cacheNode, f fragmentedFile, count int) {
	t.Helper()
	var bad []string
	for i := range count {
		start := time.Now()
		m := e.mount(t, mountOpts{node: nodes[i%len(nodes)], subdir: path.Dir(f.path)})
		res := readFragmented(t, m, f)
		ring := m.metric(t, "ringcache_mount_read_bytes_total", `source="peer"`) + m.metric(t, "ringcache_mount_read_bytes_total", `source="local"`)
		m.Unmount()
		if i > 0 && ring == 0 {
			t.Errorf("mount %d read no bytes from the ring", i+1)
		}
		if res != "" {
			bad = append(bad, fmt.Sprintf("mount %d: %s", i+1, res))
		}
		t.Logf("fresh mount %d of %d: right=%v, %.0f MiB from the ring, %v", i+1, count, res == "", ring/(1<<20), time.Since(start).Round(time.Millisecond))
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d fresh mounts read wrong bytes of %s (%d passes):\n%s", len(bad), count, f.path, f.passes, strings.Join(bad, "\n"))
	}
}

// TestMountZstdFragmented is the regression test for wrong bytes on zstd
// volumes (juicedata/juicefs#7555; go.mod pins DataDog/zstd v1.5.0): a
// file whose chunks hold many overlapping slices, written in many
// open-write-close passes, reads back right on each of ten fresh
// read-only mounts through the ring.
func TestMountZstdFragmented(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{Compression: "zstd"})
	f := writeFragmented(t, e.metaURL, "/models/frag/model.safetensors", 7555, 72<<20)
	nodes, _ := startCluster(t, e)
	checkFreshMounts(t, e, nodes, f, 10)
}

// TestMountFragmentedVolumeKinds reads the same kind of fragmented file on
// every other kind of volume, two fresh mounts each, all through one ring.
func TestMountFragmentedVolumeKinds(t *testing.T) {
	kinds := []struct {
		name string
		fo   func(t *testing.T) juicetest.FormatOptions
	}{
		{"lz4", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{Compression: "lz4"} }},
		{"hash-prefix", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{HashPrefix: true} }},
		{"block-size-1024", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{BlockSize: 1024} }},
		{"block-size-16384", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{BlockSize: 16384} }},
		{"encrypted", func(t *testing.T) juicetest.FormatOptions {
			return juicetest.FormatOptions{EncryptKeyPEM: rsaKeyPEM(t)}
		}},
		{"encrypted-zstd-hash-prefix", func(t *testing.T) juicetest.FormatOptions {
			return juicetest.FormatOptions{EncryptKeyPEM: rsaKeyPEM(t), Compression: "zstd", HashPrefix: true}
		}},
	}
	// The env's own volume is the plain kind (no compression, 4 MiB
	// blocks); the others share its Redis, MinIO bucket and ring.
	e := newEnv(t, juicetest.FormatOptions{})
	urls := map[string]string{"plain": e.metaURL}
	names := []string{"plain"}
	files := map[string]fragmentedFile{}
	files["plain"] = writeFragmented(t, e.metaURL, "/models/frag/model.safetensors", 1, 72<<20+777)
	for i, k := range kinds {
		fo := k.fo(t)
		fo.Name = k.name
		fo.MetaURL = e.redis.NewDB(t)
		fo.Bucket = "http://" + e.proxy.Addr + "/ringcache"
		fo.AccessKey, fo.SecretKey = e.minio.AccessKey, e.minio.SecretKey
		if _, err := juicetest.Format(context.Background(), fo); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		urls[k.name] = fo.MetaURL
		names = append(names, k.name)
		files[k.name] = writeFragmented(t, fo.MetaURL, "/models/frag/model.safetensors", uint64(i+2), 72<<20+777)
		// The nodes serve every volume named in their environment.
		t.Setenv("RINGCACHE_VOLUME_"+strings.ToUpper(strings.ReplaceAll(k.name, "-", "_")), fo.MetaURL)
	}
	nodes, _ := startCluster(t, e)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			// The mount helper mounts the env's volume: point it at this
			// kind's for the duration of the subtest.
			saved := e.c.MetaURL
			e.c.MetaURL = urls[name]
			defer func() { e.c.MetaURL = saved }()
			checkFreshMounts(t, e, nodes, files[name], 2)
		})
	}
}
