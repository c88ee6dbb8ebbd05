package juice_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/juice"
)

// TestResolveDotDotPhysically: on a real volume (Redis metadata, MinIO
// objects), a ".." in a symlink's target after a component that is itself
// a symlink goes to the parent of where that symlink leads, as open(2)
// does, not to the parent of the link's name: /t/d/l -> sub/../../x with
// /t/d/sub -> /e/deep/dir reads /e/x (Linux reads /e/x; a lexical reading
// says /t/x), and a ".." climbing above the root through a symlink to "/"
// is refused.
func TestResolveDotDotPhysically(t *testing.T) {
	env := &realEnv{redis: realtest.StartRedis(t), minio: realtest.StartMinIO(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	metaURL, _ := env.format(t, ctx, "dotdot", juicetest.FormatOptions{BlockSize: 1024})
	w, err := juicetest.OpenWriter(ctx, metaURL)
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range map[string]int{"/e/x": mib + 3, "/t/x": 2*mib + 5, "/e/deep/dir/f": 700, "/t/d/file": 10} {
		if err := w.WriteFile(p, pattern(n, byte(n))); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{ // link, target
		{"/t/d/sub", "/e/deep/dir"},
		{"/t/d/l", "sub/../../x"},
		{"/t/d/up", "sub/.."},
		{"/t/d/root", "/"},
		{"/t/d/esc", "root/.."},
		{"/t/d/chain", "up/../deep/dir/../../x"},
	} {
		if err := w.Symlink(l[1], l[0]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
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
	ex := resolve("/e/x")
	for _, tc := range []struct {
		path, resolved string
		files          []string
	}{
		{"/t/d/l", "/e/x", []string{"/e/x"}},
		{"/t/d/up", "/e/deep", []string{"/e/deep/dir/f"}},
		{"/t/d/chain", "/e/x", []string{"/e/x"}},
	} {
		r := resolve(tc.path)
		var got []string
		for _, f := range r.Files {
			got = append(got, f.Path)
		}
		if len(r.Paths) != 1 || r.Paths[0].Resolved != tc.resolved || !slices.Equal(got, tc.files) {
			t.Errorf("%s: resolved %+v, files %q; want %s, %q", tc.path, r.Paths, got, tc.resolved, tc.files)
		}
		if tc.resolved == "/e/x" {
			wantBlocks(t, tc.path, r.Blocks, ex.Blocks)
		}
	}
	_, err = juice.Resolve(ctx, m, format, []string{"/t/d/esc"})
	if !errors.Is(err, juice.ErrSymlinkOutside) || !strings.Contains(err.Error(), `symlink "/t/d/esc" -> "root/.."`) {
		t.Errorf("/t/d/esc: %v, want ErrSymlinkOutside naming the link", err)
	}
	// Walking /t: l leads to /e/x, out of the tree, so it is skipped (a
	// lexical reading would find /t/x, inside).
	tr := resolve("/t")
	reasons := map[string]string{}
	for _, s := range tr.Skipped {
		reasons[s.Link] = s.Reason
	}
	if r := reasons["/t/d/l"]; !strings.Contains(r, `leads to "/e/x", outside the tree "/t"`) {
		t.Errorf("/t/d/l in the tree: %q; skipped %+v", r, tr.Skipped)
	}
}
