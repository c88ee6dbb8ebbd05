package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/ring"
)

// runWarmup runs "cachenode warmup" against the node at addr, the metadata
// URL in the environment (never in argv), and returns its output and exit
// status.
func (e *env) runWarmup(t *testing.T, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "cachenode"),
		append([]string{"warmup", "--addr", addr, "--token-file", e.token, "--volume", "models"}, args...)...)
	cmd.Env = append(os.Environ(), "RINGCACHE_META_URL="+e.metaURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run cachenode warmup: %v", err)
	}
	if strings.Contains(out.String()+errb.String(), e.metaURL) {
		t.Errorf("cachenode warmup printed the metadata URL")
	}
	return out.String(), errb.String(), code
}

// warmupJSON runs a warm-up mode with --json and decodes stdout into v.
func (e *env) warmupJSON(t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out, errs, code := e.runWarmup(t, addr, append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("cachenode warmup %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cachenode warmup %q: %v\n%s", args, err, out)
	}
}

// resolve lists the blocks of paths, as the warm-up will.
func (e *env) resolve(t *testing.T, paths ...string) *juice.Resolution {
	t.Helper()
	m, f, err := juice.OpenMeta(context.Background(), e.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	r, err := juice.Resolve(context.Background(), m, f, paths)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// holdersOf returns which of the nodes hold key.
func holdersOf(t *testing.T, clients map[string]*peer.Client, key string) []string {
	t.Helper()
	var out []string
	for addr, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sizes, err := c.Has(ctx, "models", []string{key})
		cancel()
		if err != nil {
			t.Fatalf("has %s on %s: %v", key, addr, err)
		}
		if sizes[0] >= 0 {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

func ownersOf(p *ring.Placement, uuid, key string, n int) []string {
	var out []string
	for _, m := range p.Owners(blockkey.Ring(uuid, key), n) {
		out = append(out, m.Addr)
	}
	slices.Sort(out)
	return out
}

// TestWarmup is the warm-up's end-to-end test: the cachenode warmup
// command against three cache node processes, real Redis and MinIO.
func TestWarmup(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	const (
		shard1 = "/llama/model-00001-of-00002.safetensors"
		shard2 = "/llama/model-00002-of-00002.safetensors"
		config = "/llama/config.json"
		other  = "/other/adapter.bin"
	)
	e.write(t, map[string][]byte{
		shard1: randomBytes(t, 9<<20+12345),
		shard2: randomBytes(t, 5<<20),
		config: bytes.Repeat([]byte(`{"hidden_size": 4096, "num_layers": 32},`), 3000),
		other:  randomBytes(t, 6<<20+7),
	})
	objects := e.blocks(t)
	model := e.resolve(t, "/llama")
	half := e.resolve(t, shard2)
	adapter := e.resolve(t, other)
	inHalf := map[string]bool{}
	for _, b := range half.Blocks {
		inHalf[b.Key] = true
	}
	for _, b := range append(slices.Clone(model.Blocks), adapter.Blocks...) {
		if objects[b.Key] == nil {
			t.Fatalf("resolved block %s is not in the object store", b.Key)
		}
	}
	t.Logf("model: %d files, %d blocks, %d bytes; %d blocks in %s", len(model.Files), len(model.Blocks), model.Bytes, len(half.Blocks), shard2)

	nodes, p := startCluster(t, e)
	clients := map[string]*peer.Client{}
	for _, n := range nodes {
		clients[n.peerAddr] = n.client(t)
	}
	uuid := e.format.UUID
	addr := nodes[0].peerAddr
	e.proxy.Reset()

	t.Run("warm half of the model", func(t *testing.T) {
		var out struct{ Result prefetch.Result }
		e.warmupJSON(t, addr, &out, shard2)
		r := out.Result
		if r.Blocks != len(half.Blocks) || r.BlocksFetched != len(half.Blocks) || r.BlocksFailed != 0 || r.FilesDone != 1 {
			t.Errorf("result = %+v", r)
		}
	})

	t.Run("check and dry-run report the half-warm model", func(t *testing.T) {
		var ck struct{ Check prefetch.CheckResult }
		e.warmupJSON(t, addr, &ck, "--check", "/llama")
		c := ck.Check
		if c.Blocks != len(model.Blocks) || c.Bytes != model.Bytes || c.Files != 3 || c.Members != 3 ||
			c.CachedBlocks != len(half.Blocks) || c.CachedBytes != half.Bytes ||
			c.MissingBlocks != len(model.Blocks)-len(half.Blocks) || c.MissingBytes != model.Bytes-half.Bytes ||
			c.FetchBytes != model.Bytes-half.Bytes || len(c.Unreachable) != 0 {
			t.Errorf("check = %+v", c)
		}
		for _, f := range c.PerFile {
			want := 0.0
			if f.Path == shard2 {
				want = 100
			}
			if f.Percent != want {
				t.Errorf("check: %s is %.1f%% cached, want %.0f%%", f.Path, f.Percent, want)
			}
		}
		// Per node: the blocks it owns and holds, from the placement.
		for _, n := range c.Nodes {
			owns, cached := 0, 0
			for _, b := range model.Blocks {
				if ownersOf(p, uuid, b.Key, 1)[0] == n.Addr {
					owns++
					if inHalf[b.Key] {
						cached++
					}
				}
			}
			if n.Blocks != owns || n.CachedBlocks != cached {
				t.Errorf("check: node %s owns %d, holds %d of the model; want %d, %d", n.ID, n.Blocks, n.CachedBlocks, owns, cached)
			}
		}
		text, _, code := e.runWarmup(t, addr, "--check", "/llama")
		if code != 0 || !strings.Contains(text, "Cached on their owners: ") || !strings.Contains(text, shard2) {
			t.Errorf("check (text): exit %d\n%s", code, text)
		}
		t.Logf("cachenode warmup --check /llama:\n%s", text)

		var dr struct {
			DryRun prefetch.DryRunResult `json:"dry_run"`
		}
		e.warmupJSON(t, addr, &dr, "--dry-run", "/llama")
		d := dr.DryRun
		var capacity int64
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := c.Status(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			capacity += st.StoreCapacityBytes
		}
		if d.MissingBlocks != len(model.Blocks)-len(half.Blocks) || d.FetchBytes != model.Bytes-half.Bytes ||
			d.CachedBlocks != len(half.Blocks) || !d.Fits || len(d.NodeFits) != 3 ||
			d.CapacityBytes != capacity || d.UsedBytes != half.Bytes || d.FreeBytes != capacity-half.Bytes {
			t.Errorf("dry run = %+v (ring capacity %d)", d, capacity)
		}
		for _, f := range d.NodeFits {
			owner := 0
			for _, n := range c.Nodes {
				if n.Addr == f.Addr {
					owner++
					if f.FetchBytes != n.FetchBytes {
						t.Errorf("dry run: node %s would fetch %d bytes, check says it lacks %d", f.ID, f.FetchBytes, n.FetchBytes)
					}
				}
			}
			if owner != 1 || !f.Fits || f.Error != "" {
				t.Errorf("dry run: node fit %+v", f)
			}
		}
		text, _, code = e.runWarmup(t, addr, "--dry-run", "/llama")
		if code != 0 || !strings.Contains(text, "A warm-up would fetch ") || !strings.Contains(text, ": fits") {
			t.Errorf("dry run (text): exit %d\n%s", code, text)
		}
		t.Logf("cachenode warmup --dry-run /llama:\n%s", text)
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != len(half.Blocks) {
			t.Errorf("%d origin GETs after warming %d blocks and a check and a dry run", n, len(half.Blocks))
		}
	})

	t.Run("warm the model directory", func(t *testing.T) {
		list := filepath.Join(t.TempDir(), "paths")
		os.WriteFile(list, []byte("# the model\n\n/llama\n"), 0o644)
		var out struct{ Result prefetch.Result }
		e.warmupJSON(t, addr, &out, "--file-list", list)
		r := out.Result
		if r.Blocks != len(model.Blocks) || r.BlocksDone != len(model.Blocks) || r.BlocksCached != len(half.Blocks) ||
			r.BlocksFetched != len(model.Blocks)-len(half.Blocks) || r.BlocksFailed != 0 || r.Files != 3 || r.FilesDone != 3 ||
			r.BytesDone != model.Bytes || len(r.Failed) != 0 {
			t.Errorf("result = %+v", r)
		}
		// Each block came from the origin once, over both warm-ups.
		for _, b := range model.Blocks {
			if n := e.originGets(b.Key); n != 1 {
				t.Errorf("%s: %d origin GETs, want 1", b.Key, n)
			}
		}
		for _, b := range adapter.Blocks {
			if n := e.originGets(b.Key); n != 0 {
				t.Errorf("%s is not in the warmed paths, but was fetched %d times", b.Key, n)
			}
		}
		for _, b := range model.Blocks {
			if got, want := holdersOf(t, clients, b.Key), ownersOf(p, uuid, b.Key, 1); !slices.Equal(got, want) {
				t.Errorf("%s held by %v, want its owner %v", b.Key, got, want)
			}
		}
	})

	t.Run("reading the warm model through the ring costs no origin GET", func(t *testing.T) {
		e.proxy.Reset()
		for _, b := range model.Blocks {
			owner := ownersOf(p, uuid, b.Key, 1)[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			got, _, err := clients[owner].Read(ctx, "models", b.Key, 0, -1)
			cancel()
			if err != nil || !bytes.Equal(got, objects[b.Key]) {
				t.Fatalf("read %s from its owner: err %v, bytes equal %v", b.Key, err, bytes.Equal(got, objects[b.Key]))
			}
		}
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
			t.Errorf("reading the warm model caused %d origin GETs for data blocks, want 0", n)
		}
		var ck struct{ Check prefetch.CheckResult }
		e.warmupJSON(t, addr, &ck, "--check", "/llama")
		if ck.Check.Percent != 100 || ck.Check.CachedBlocks != len(model.Blocks) {
			t.Errorf("check after the warm-up: %.1f%%, %d of %d blocks", ck.Check.Percent, ck.Check.CachedBlocks, len(model.Blocks))
		}
	})

	t.Run("bad input gets a clear error", func(t *testing.T) {
		_, stderr, code := e.runWarmup(t, addr, "/llama", "/llama/no-such-shard.safetensors")
		if (code != 1 && code != 2) || !strings.Contains(stderr, "/llama/no-such-shard.safetensors") || !strings.Contains(stderr, "path not found") {
			t.Errorf("missing path: exit %d, stderr:\n%s", code, stderr)
		}
		t.Logf("missing path: exit %d: %s", code, stderr)
		cmd := exec.Command(filepath.Join(binDir, "cachenode"), "warmup", "--addr", addr, "--token-file", e.token, "--volume", "datasets", "/llama")
		cmd.Env = append(os.Environ(), "RINGCACHE_META_URL="+e.metaURL)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `unknown volume "datasets"`) {
			t.Errorf("unknown volume: %v\n%s", err, out)
		}
		_, stderr, code = e.runWarmup(t, addr, "--replicas", "0", "/llama")
		if code != 2 || !strings.Contains(stderr, "--replicas") {
			t.Errorf("bad flag: exit %d, stderr:\n%s", code, stderr)
		}
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
			t.Errorf("failed warm-ups caused %d origin GETs", n)
		}
	})

	t.Run("two replicas place each block on its two owners", func(t *testing.T) {
		e.proxy.Reset()
		var out struct{ Result prefetch.Result }
		e.warmupJSON(t, addr, &out, "--replicas", "2", other)
		r := out.Result
		if r.BlocksDone != len(adapter.Blocks) || r.BlocksFailed != 0 || r.OriginBytes != 2*adapter.Bytes {
			t.Errorf("result = %+v", r)
		}
		for _, b := range adapter.Blocks {
			want := ownersOf(p, uuid, b.Key, 2)
			if got := holdersOf(t, clients, b.Key); len(want) != 2 || !slices.Equal(got, want) {
				t.Errorf("%s held by %v, want its two owners %v", b.Key, got, want)
			}
			if n := e.originGets(b.Key); n != 2 {
				t.Errorf("%s: %d origin GETs, want 2 (one per replica owner)", b.Key, n)
			}
		}
	})

	t.Run("background warm-up detaches and logs", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "warmup.log")
		out, stderr, code := e.runWarmup(t, addr, "--background", "--log-file", logPath, "--replicas", "2", other)
		if code != 0 || !strings.Contains(out, "detached: pid ") || !strings.Contains(out, logPath) {
			t.Fatalf("background: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
		var b []byte
		pollUntil(t, "the background warm-up logs its end", 60*time.Second, func() error {
			if b, _ = os.ReadFile(logPath); !strings.Contains(string(b), "Warmed volume models") {
				return fmt.Errorf("log so far:\n%s", b)
			}
			return nil
		})
		if !strings.Contains(string(b), "already cached:          "+strconv.Itoa(len(adapter.Blocks))+" blocks") {
			t.Errorf("background log:\n%s", b)
		}
		if strings.Contains(string(b), e.metaURL) {
			t.Error("the background log holds the metadata URL")
		}
		t.Logf("background warm-up: %s\nlog:\n%s", out, b)
	})
}

// TestWarmupSymlinks: "cachenode warmup /models/m/latest" with latest ->
// v2 warms exactly v2's blocks (the plan of v2, and warming v2 afterwards
// finds them all cached), says where the path led, and a read of the model
// through a mount, by the symlink, then costs no origin GET. Paths that
// match no file (an empty directory) and bad symlinks (dangling, leaving the
// volume) fail with exit status 2 and a message naming them, in every mode,
// fetching nothing.
func TestWarmupSymlinks(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	v1 := sampleModel(t, "/models/m/v1", 6<<20)
	v2 := sampleModel(t, "/models/m/v2", 9<<20)
	e.write(t, v1)
	e.write(t, v2)
	w, err := juicetest.OpenWriter(context.Background(), e.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		w.Symlink("v2", "/models/m/latest"),
		w.Symlink("../v1/config.json", "/models/m/v2/shared-config.json"), // leaves v2's tree: skipped
		w.Symlink("v3", "/models/m/broken"),
		w.Symlink("../../../etc", "/models/m/escape"),
		w.MkdirAll("/models/m/empty"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	plan := e.resolve(t, "/models/m/v2")
	old := e.resolve(t, "/models/m/v1")
	if len(plan.Files) != len(v2) || plan.SkippedLinks != 1 {
		t.Fatalf("plan of v2: %d files, %d links skipped; want %d files, 1 skipped", len(plan.Files), plan.SkippedLinks, len(v2))
	}
	nodes, _ := startCluster(t, e)
	addr := nodes[0].peerAddr
	e.proxy.Reset()

	t.Run("the plan of the symlink is the plan of its target", func(t *testing.T) {
		for _, p := range []string{"/models/m/v2", "/models/m/latest"} {
			var dr struct {
				DryRun   prefetch.DryRunResult `json:"dry_run"`
				Resolved []juice.PathResolution
			}
			e.warmupJSON(t, addr, &dr, "--dry-run", p)
			if d := dr.DryRun; d.Blocks != len(plan.Blocks) || d.Bytes != plan.Bytes || d.Files != len(plan.Files) || d.MissingBlocks != len(plan.Blocks) {
				t.Errorf("dry run of %s: %d files, %d blocks, %d bytes (%d missing); v2 has %d files, %d blocks, %d bytes",
					p, d.Files, d.Blocks, d.Bytes, d.MissingBlocks, len(plan.Files), len(plan.Blocks), plan.Bytes)
			}
			if len(dr.Resolved) != 1 || dr.Resolved[0].Resolved != "/models/m/v2" {
				t.Errorf("dry run of %s: resolved %+v", p, dr.Resolved)
			}
		}
	})

	t.Run("warming latest warms v2", func(t *testing.T) {
		out, stderr, code := e.runWarmup(t, addr, "/models/m/latest")
		if code != 0 {
			t.Fatalf("warmup /models/m/latest: exit %d\n%s\n%s", code, out, stderr)
		}
		t.Logf("cachenode warmup /models/m/latest:\nstdout:\n%s\nstderr:\n%s", out, stderr)
		for _, want := range []string{"/models/m/latest -> /models/m/v2\n", "warning: 1 symlink skipped",
			`/models/m/v2/shared-config.json -> ../v1/config.json: leads to "/models/m/v1/config.json", outside the tree "/models/m/v2"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		wantLine := fmt.Sprintf("%d of %d blocks", len(plan.Blocks), len(plan.Blocks))
		if !strings.Contains(out, wantLine) || !strings.Contains(out, fmt.Sprintf("%d of %d files", len(plan.Files), len(plan.Files))) {
			t.Errorf("stdout lacks %q:\n%s", wantLine, out)
		}
		for _, b := range plan.Blocks {
			if n := e.originGets(b.Key); n != 1 {
				t.Errorf("v2 block %s: %d origin GETs, want 1", b.Key, n)
			}
		}
		for _, b := range old.Blocks {
			if n := e.originGets(b.Key); n != 0 {
				t.Errorf("v1 block %s: %d origin GETs, want 0 (not warmed)", b.Key, n)
			}
		}
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != len(plan.Blocks) {
			t.Errorf("%d origin GETs of data blocks, want %d (v2's blocks)", n, len(plan.Blocks))
		}
		// Warming v2 itself now finds every block cached.
		var direct struct{ Result prefetch.Result }
		e.warmupJSON(t, addr, &direct, "/models/m/v2")
		if r := direct.Result; r.Blocks != len(plan.Blocks) || r.BlocksCached != len(plan.Blocks) || r.BlocksFetched != 0 {
			t.Errorf("warmup /models/m/v2 after latest: %+v", r)
		}
		var ck struct{ Check prefetch.CheckResult }
		e.warmupJSON(t, addr, &ck, "--check", "/models/m/latest")
		if c := ck.Check; c.Percent != 100 || c.Blocks != len(plan.Blocks) || c.CachedBlocks != len(plan.Blocks) {
			t.Errorf("check of latest: %.1f%% of %d blocks, %d cached", c.Percent, c.Blocks, c.CachedBlocks)
		}
	})

	t.Run("reading the model through the symlink costs no origin GET", func(t *testing.T) {
		m := e.mount(t, mountOpts{node: nodes[1]})
		e.proxy.Reset()
		for p, data := range v2 {
			rel := strings.TrimPrefix(p, "/models/m/v2/")
			b, err := os.ReadFile(filepath.Join(m.dir, "models/m/latest", rel))
			if err != nil || sha(b) != sha(data) {
				t.Errorf("read latest/%s: %v, sha256 %s, want %s", rel, err, sha(b), sha(data))
			}
		}
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
			t.Errorf("reading the warm model by its symlink caused %d origin GETs of data blocks, want 0", n)
		}
	})

	t.Run("paths matching no file and bad symlinks fail", func(t *testing.T) {
		e.proxy.Reset()
		for _, tc := range []struct{ path, msg string }{
			{"/models/m/empty", `/models/m/empty matches no file`},
			{"/models/m/broken", `"/models/m/v3" does not exist (reached through symlink "/models/m/broken" -> "v3")`},
			{"/models/m/escape", `symlink "/models/m/escape" -> "../../../etc": symlink target is outside the volume`},
		} {
			for _, mode := range [][]string{nil, {"--check"}, {"--dry-run"}, {"--background"}, {"--json"}} {
				out, stderr, code := e.runWarmup(t, addr, append(mode, tc.path)...)
				if code != 2 || !strings.Contains(stderr, tc.msg) || strings.Contains(out, "Warmed") || strings.Contains(out, "detached") {
					t.Errorf("warmup %q %s: exit %d, want 2 and %q\nstdout:\n%s\nstderr:\n%s", mode, tc.path, code, tc.msg, out, stderr)
				}
			}
		}
		_, stderr, _ := e.runWarmup(t, addr, "/models/m/empty")
		t.Logf("warmup /models/m/empty: %s", stderr)
		if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
			t.Errorf("failed warm-ups caused %d origin GETs", n)
		}
	})
}
