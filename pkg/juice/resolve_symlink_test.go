package juice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/meta"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/juice"
)

// TestResolveSymlinks: on a real volume (Redis metadata, MinIO objects,
// files and symlinks written through the JuiceFS client libraries), a path
// naming a symlink resolves to what the symlink leads to (relative,
// absolute, chained, with "..", to a file, through an intermediate
// component), with exactly the target's blocks; symlinks leading out of the
// volume, dangling or looping are errors naming the path, the symlink and
// its target; symlinks found in a tree are followed inside it and skipped
// (counted) otherwise.
func TestResolveSymlinks(t *testing.T) {
	env := &realEnv{redis: realtest.StartRedis(t), minio: realtest.StartMinIO(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	metaURL, _ := env.format(t, ctx, "links", juicetest.FormatOptions{BlockSize: 1024})
	w, err := juicetest.OpenWriter(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{
		"/models/m/v1/model.safetensors": 2*mib + mib/2,
		"/models/m/v1/config.json":       300,
		"/models/m/v2/model.safetensors": 3*mib + 17,
		"/models/m/v2/config.json":       400,
		"/models/m/v2/sub/tokenizer":     mib + 1,
	}
	seed := byte(0)
	for _, p := range []string{"/models/m/v1/model.safetensors", "/models/m/v1/config.json", "/models/m/v2/model.safetensors", "/models/m/v2/config.json", "/models/m/v2/sub/tokenizer"} {
		seed++
		if err := w.WriteFile(p, pattern(files[p], seed)); err != nil {
			t.Fatal(err)
		}
	}
	links := [][2]string{ // link, target
		{"/models/m/latest", "v2"},
		{"/models/m/abs", "/models/m/v2"},
		{"/models/m/current", "latest"},
		{"/models/m/dotdot", "../m/./v2/"},
		{"/models/m/weights", "v2/model.safetensors"},
		{"/models/m/esc", "../../../etc"},
		{"/models/m/esc-abs", "/../etc"},
		{"/models/m/dangling", "v3"},
		{"/models/m/loop-a", "loop-b"},
		{"/models/m/loop-b", "loop-a"},
		{"/models/m/self", "self"},
		{"/models/m/emptylink", "empty"},
		// Found walking v2:
		{"/models/m/v2/inside", "model.safetensors"},
		{"/models/m/v2/sub/up", ".."},
		{"/models/m/v2/back", "../v2/sub"},
		{"/models/m/v2/shared", "../v1/config.json"},
		{"/models/m/v2/gone", "nothing"},
		{"/models/m/v2/out", "../../../../x"},
	}
	// A chain of 41 symlinks: /chain/l0 -> l1 -> ... -> l40 -> /models/m/v2.
	for i := 0; i < juice.MaxSymlinkHops; i++ {
		links = append(links, [2]string{fmt.Sprintf("/chain/l%d", i), fmt.Sprintf("l%d", i+1)})
	}
	links = append(links, [2]string{fmt.Sprintf("/chain/l%d", juice.MaxSymlinkHops), "/models/m/v2"})
	for _, l := range links {
		if err := w.Symlink(l[1], l[0]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	c := openRW(t, metaURL)
	if e := c.fs.Mkdir(meta.Background(), "/models/m/empty", 0o755, 0); e != 0 {
		t.Fatal(e)
	}

	m, format := openMeta(t, ctx, metaURL)
	resolve := func(paths ...string) *juice.Resolution {
		t.Helper()
		r, err := juice.Resolve(ctx, m, format, paths)
		if err != nil {
			t.Fatalf("resolve %q: %v", paths, err)
		}
		checkResolution(t, r)
		return r
	}
	filePaths := func(r *juice.Resolution) []string {
		var out []string
		for _, f := range r.Files {
			out = append(out, f.Path)
		}
		return out
	}

	v2 := resolve("/models/m/v2")
	wantV2 := []string{"/models/m/v2/config.json", "/models/m/v2/model.safetensors", "/models/m/v2/sub/tokenizer"}
	if got := filePaths(v2); !slices.Equal(got, wantV2) {
		t.Fatalf("v2 files %q, want %q", got, wantV2)
	}
	if want := 1 + 4 + 2; len(v2.Blocks) != want || v2.Bytes != 400+3*mib+17+mib+1 {
		t.Fatalf("v2: %d blocks, %d bytes; want %d blocks", len(v2.Blocks), v2.Bytes, want)
	}
	if p := v2.Paths[0]; p.Resolved != "/models/m/v2" || p.Symlinks != 0 || p.Files != 3 || p.SkippedLinks != 3 {
		t.Errorf("v2 path resolution %+v", p)
	}

	t.Run("named symlinks lead to their targets", func(t *testing.T) {
		for _, tc := range []struct {
			path, resolved string
			hops           int
			files          []string
		}{
			{"/models/m/latest", "/models/m/v2", 1, wantV2},
			{"/models/m/abs", "/models/m/v2", 1, wantV2},
			{"/models/m/current", "/models/m/v2", 2, wantV2},
			{"/models/m/dotdot", "/models/m/v2", 1, wantV2},
			{"/models/m/latest/", "/models/m/v2", 1, wantV2},
			{"/chain/l1", "/models/m/v2", juice.MaxSymlinkHops, wantV2},
			{"/models/m/weights", "/models/m/v2/model.safetensors", 1, wantV2[1:2]},
			{"/models/m/latest/config.json", "/models/m/v2/config.json", 1, wantV2[:1]},
			{"/models/m/current/sub/up/sub/tokenizer", "/models/m/v2/sub/tokenizer", 3, wantV2[2:]},
		} {
			r := resolve(tc.path)
			if got := filePaths(r); !slices.Equal(got, tc.files) {
				t.Errorf("%s: files %q, want %q", tc.path, got, tc.files)
			}
			if len(r.Paths) != 1 || r.Paths[0].Path != tc.path || r.Paths[0].Resolved != tc.resolved || r.Paths[0].Symlinks != tc.hops || r.Paths[0].Files != len(tc.files) {
				t.Errorf("%s: paths %+v, want -> %s after %d symlinks", tc.path, r.Paths, tc.resolved, tc.hops)
			}
			if slices.Equal(tc.files, wantV2) {
				wantBlocks(t, tc.path, r.Blocks, v2.Blocks)
				if r.Bytes != v2.Bytes || r.SkippedLinks != v2.SkippedLinks {
					t.Errorf("%s: %d bytes, %d links skipped; v2 has %d, %d", tc.path, r.Bytes, r.SkippedLinks, v2.Bytes, v2.SkippedLinks)
				}
			}
		}
		// A symlink to an empty directory resolves, matching no file.
		r := resolve("/models/m/emptylink")
		if len(r.Files) != 0 || len(r.Paths) != 1 || r.Paths[0].Resolved != "/models/m/empty" || r.Paths[0].Files != 0 {
			t.Errorf("link to an empty directory: %+v", r)
		}
		// Naming the link and its target: the same files once.
		if r := resolve("/models/m/latest", "/models/m/v2"); !slices.Equal(filePaths(r), wantV2) || r.Paths[0].Files != 3 || r.Paths[1].Files != 3 {
			t.Errorf("link and target: %+v", r)
		}
	})

	t.Run("bad symlinks named are errors naming them", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want error
			msgs []string
		}{
			{"/models/m/esc", juice.ErrSymlinkOutside, []string{`"/models/m/esc" -> "../../../etc"`, "above the volume root"}},
			{"/models/m/esc-abs", juice.ErrSymlinkOutside, []string{`"/models/m/esc-abs" -> "/../etc"`}},
			{"/models/m/dangling", juice.ErrPathNotFound, []string{`"/models/m/v3" does not exist`, `symlink "/models/m/dangling" -> "v3"`}},
			{"/models/m/dangling/x", juice.ErrPathNotFound, []string{`"/models/m/v3" does not exist`}},
			{"/models/m/loop-a", juice.ErrSymlinkLoop, []string{`"/models/m/loop-a"`, `-> "loop-a"`, "too many levels"}},
			{"/models/m/self", juice.ErrSymlinkLoop, []string{`"/models/m/self" -> "self"`}},
			{"/chain/l0", juice.ErrSymlinkLoop, []string{`followed 40 symlinks, the last "/chain/l39" -> "l40", and "/chain/l40" is one more`}},
			{"/models/m/weights/x", juice.ErrPathNotFound, []string{`"/models/m/v2/model.safetensors" is a file, reached through symlink "/models/m/weights" -> "v2/model.safetensors"`}},
		} {
			// Among good paths, it fails the whole call.
			_, err := juice.Resolve(ctx, m, format, []string{"/models/m/v2", tc.path})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("resolve %q", tc.path)) {
				t.Errorf("%s: got %v, want %v", tc.path, err, tc.want)
				continue
			}
			for _, msg := range tc.msgs {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("%s: %q lacks %q", tc.path, err, msg)
				}
			}
			t.Logf("%s: %v", tc.path, err)
		}
	})

	t.Run("symlinks in a tree stay in it", func(t *testing.T) {
		skipped := map[string]string{}
		for _, s := range v2.Skipped {
			skipped[s.Link] = s.Target + ": " + s.Reason
		}
		for link, want := range map[string]string{
			"/models/m/v2/shared": `../v1/config.json: leads to "/models/m/v1/config.json", outside the tree "/models/m/v2"`,
			"/models/m/v2/gone":   `nothing: path not found: "/models/m/v2/nothing" does not exist`,
			"/models/m/v2/out":    `../../../../x: symlink "/models/m/v2/out" -> "../../../../x": symlink target is outside the volume`,
		} {
			if !strings.HasPrefix(skipped[link], want) {
				t.Errorf("skipped %s: %q, want %q...", link, skipped[link], want)
			}
		}
		if v2.SkippedLinks != 3 || len(v2.Skipped) != 3 {
			t.Errorf("v2: %d links skipped: %+v", v2.SkippedLinks, v2.Skipped)
		}
		// The whole volume: only the links that lead nowhere are skipped,
		// and every file counts once.
		all := resolve("/")
		want := []string{"/models/m/v1/config.json", "/models/m/v1/model.safetensors"}
		if got := filePaths(all); !slices.Equal(got, append(want, wantV2...)) {
			t.Errorf("/: files %q", got)
		}
		var names []string
		for _, s := range all.Skipped {
			names = append(names, s.Link)
		}
		slices.Sort(names)
		wantSkipped := []string{"/chain/l0", "/models/m/dangling", "/models/m/esc", "/models/m/esc-abs", "/models/m/loop-a", "/models/m/loop-b", "/models/m/self", "/models/m/v2/gone", "/models/m/v2/out"}
		if !slices.Equal(names, wantSkipped) || all.SkippedLinks != len(wantSkipped) || all.Paths[0].SkippedLinks != len(wantSkipped) {
			t.Errorf("/: %d skipped %q, want %q", all.SkippedLinks, names, wantSkipped)
		}
		// A subtree of v2 with a link climbing out of it to v2.
		sub := resolve("/models/m/v2/sub")
		if got := filePaths(sub); !slices.Equal(got, wantV2[2:]) || sub.SkippedLinks != 1 || sub.Skipped[0].Link != "/models/m/v2/sub/up" {
			t.Errorf("sub: files %q, skipped %+v", got, sub.Skipped)
		}
	})
}
