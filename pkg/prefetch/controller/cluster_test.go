package controller_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
	"github.com/ringcache/ringcache/pkg/prefetch/controller"
)

// TestWarmupWarmsRealCacheNodes: a Warmup applied to a real kube-apiserver
// warms three real cache nodes (real Redis and MinIO): its status reaches
// Succeeded with the plan's counts, every block is held by its owner, and
// the origin served each block once. A Warmup of a volume the nodes do not
// serve fails with reason UnknownVolume and fetches nothing. A Warmup of a
// symlink warms its target; one of a path that is missing, an empty
// directory or a dangling symlink fails with reason PathNotFound.
func TestWarmupWarmsRealCacheNodes(t *testing.T) {
	c, ns := needAPI(t)
	ctx := context.Background()
	env, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir(), Bin: binDir})
	if err != nil {
		if errors.Is(err, realtest.ErrMissing) {
			realtest.Missing(t, "%v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	rnd := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	if err := env.Write(ctx, map[string][]byte{
		"/llama/model-00001-of-00002.safetensors": rnd(9<<20 + 12345),
		"/llama/model-00002-of-00002.safetensors": rnd(5 << 20),
		"/llama/config.json":                      []byte(strings.Repeat(`{"hidden_size": 4096},`, 1000)),
		"/other/adapter.bin":                      rnd(3 << 20),
	}); err != nil {
		t.Fatal(err)
	}
	nodes, placement, err := env.StartNodes(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	m, format, err := juice.OpenMeta(ctx, env.MetaURL)
	if err != nil {
		t.Fatal(err)
	}
	model, err := juice.Resolve(ctx, m, format, []string{"/llama"})
	m.Shutdown()
	if err != nil {
		t.Fatal(err)
	}

	// The metadata URL comes from a Secret, one key per volume.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ringcache-volumes"},
		Data: map[string][]byte{"models": []byte(env.MetaURL)}}
	if err := c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(env.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	warmer := &controller.ClusterWarmer{
		Seeds: []string{nodes[0].PeerAddr}, Token: []byte(strings.TrimSpace(string(tok))),
		MetaURLs: controller.SecretSource{Reader: c, Secret: types.NamespacedName{Namespace: ns, Name: "ringcache-volumes"}},
	}
	startController(t, ns, warmer, clock.Real())
	env.Proxy.Reset()

	w := newWarmup(ns, "llama", v1alpha1.WarmupPolicy{})
	if err := c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, c, client.ObjectKeyFromObject(w), v1alpha1.PhaseSucceeded, 3*time.Minute)
	st := got.Status
	if st.FilesTotal != int64(len(model.Files)) || st.FilesDone != st.FilesTotal || st.FilesFailed != 0 ||
		st.BlocksTotal != int64(len(model.Blocks)) || st.BlocksDone != st.BlocksTotal || st.BlocksFailed != 0 ||
		st.BytesTotal != model.Bytes || st.BytesDone != model.Bytes || st.BytesFailed != 0 || st.CachedBlocks != 0 ||
		st.Progress != "100.0%" || st.StartTime == nil || st.CompletionTime == nil {
		t.Errorf("status = %+v; want %d files, %d blocks, %d bytes", st, len(model.Files), len(model.Blocks), model.Bytes)
	}
	if cond := condition(got, v1alpha1.ConditionComplete); cond == nil || cond.Status != "True" || cond.Reason != v1alpha1.ReasonSucceeded {
		t.Errorf("Complete condition = %+v", cond)
	}
	if strings.Contains(st.Message, env.MetaURL) {
		t.Error("the status holds the metadata URL")
	}
	clients := map[string]*peer.Client{}
	for _, n := range nodes {
		cl, err := n.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[n.PeerAddr] = cl
	}
	for _, b := range model.Blocks {
		owner := placement.Owners(blockkey.Ring(format.UUID, b.Key), 1)[0].Addr
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sizes, err := clients[owner].Has(hctx, "models", []string{b.Key})
		cancel()
		if err != nil || sizes[0] != b.Size {
			t.Errorf("block %s: owner %s has size %v (err %v), want %d", b.Key, owner, sizes, err, b.Size)
		}
		if n := env.OriginGets(b.Key); n != 1 {
			t.Errorf("block %s: %d origin GETs, want 1", b.Key, n)
		}
	}
	if n := env.OriginBlockGets(); n != len(model.Blocks) {
		t.Errorf("%d origin block GETs, want %d (one per block of the model)", n, len(model.Blocks))
	}

	// Symlinks and paths that match nothing. latest -> llama warms
	// llama (cached now: nothing fetched) and says so; a missing path, an
	// empty directory, a directory whose only symlink leads out of it and
	// a dangling symlink fail with PathNotFound, naming the path.
	before := env.OriginBlockGets()
	wr, err := juicetest.OpenWriter(ctx, env.MetaURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		wr.Symlink("llama", "/llama-latest"),
		wr.Symlink("llama-v0", "/llama-old"),
		wr.MkdirAll("/empty"),
		wr.Symlink("../llama/config.json", "/away/config.json"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	wr.Close()
	latest := newWarmup(ns, "latest", v1alpha1.WarmupPolicy{})
	latest.Spec.Paths = []string{"/llama-latest"}
	if err := c.Create(ctx, latest); err != nil {
		t.Fatal(err)
	}
	got = waitPhase(t, c, client.ObjectKeyFromObject(latest), v1alpha1.PhaseSucceeded, 3*time.Minute)
	if st := got.Status; st.BlocksTotal != int64(len(model.Blocks)) || st.CachedBlocks != st.BlocksTotal || st.BytesTotal != model.Bytes ||
		st.FilesTotal != int64(len(model.Files)) || !strings.Contains(st.Message, `"/llama-latest" -> "/llama"`) {
		t.Errorf("latest -> llama: status = %+v; want the %d blocks of /llama, all cached", st, len(model.Blocks))
	}
	for name, tc := range map[string]struct{ path, msg string }{
		"missing":  {"/nope", `resolve "/nope": path not found`},
		"empty":    {"/empty", "/empty matches no file"},
		"away":     {"/away", `/away (1 symlink in it skipped, e.g. /away/config.json -> ../llama/config.json: leads to "/llama/config.json", outside the tree "/away") matches no file`},
		"dangling": {"/llama-old", `"/llama-v0" does not exist (reached through symlink "/llama-old" -> "llama-v0")`},
	} {
		w := newWarmup(ns, name, v1alpha1.WarmupPolicy{})
		w.Spec.Paths = []string{tc.path}
		if err := c.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
		got := waitPhase(t, c, client.ObjectKeyFromObject(w), v1alpha1.PhaseFailed, time.Minute)
		cond := condition(got, v1alpha1.ConditionComplete)
		if cond == nil || cond.Reason != v1alpha1.ReasonPathNotFound || !strings.Contains(cond.Message, tc.msg) || got.Status.Message != cond.Message {
			t.Errorf("%s: Complete condition = %+v, want PathNotFound with %q", tc.path, cond, tc.msg)
		}
	}
	if n := env.OriginBlockGets(); n != before {
		t.Errorf("the Warmups of a symlink to a warm model and of paths matching nothing caused %d origin GETs", n-before)
	}

	// A volume the nodes do not serve: Failed, nothing fetched.
	before = env.OriginBlockGets()
	bad := newWarmup(ns, "datasets", v1alpha1.WarmupPolicy{})
	bad.Spec.Volume = "datasets"
	sec.Data["datasets"] = []byte(env.MetaURL)
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	got = waitPhase(t, c, client.ObjectKeyFromObject(bad), v1alpha1.PhaseFailed, time.Minute)
	if cond := condition(got, v1alpha1.ConditionComplete); cond == nil || cond.Reason != v1alpha1.ReasonUnknownVolume || !strings.Contains(cond.Message, `"datasets"`) {
		t.Errorf("unknown volume: Complete condition = %+v", cond)
	}
	if n := env.OriginBlockGets(); n != before {
		t.Errorf("a Warmup of an unknown volume caused %d origin GETs", n-before)
	}
	// A volume without a metadata URL: Failed, NoMetadataURL.
	nourl := newWarmup(ns, "nourl", v1alpha1.WarmupPolicy{})
	nourl.Spec.Volume = "scratch"
	if err := c.Create(ctx, nourl); err != nil {
		t.Fatal(err)
	}
	got = waitPhase(t, c, client.ObjectKeyFromObject(nourl), v1alpha1.PhaseFailed, time.Minute)
	if cond := condition(got, v1alpha1.ConditionComplete); cond == nil || cond.Reason != v1alpha1.ReasonNoMetadataURL {
		t.Errorf("no metadata url: Complete condition = %+v", cond)
	}
}
