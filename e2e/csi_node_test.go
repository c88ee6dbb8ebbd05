package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/internal/juicetest"
)

// csiNodeEnv is a deployment for the node plugin tests: Redis, MinIO, a
// volume with two models, two cache nodes, and a directory for the plugin.
type csiNodeEnv struct {
	*env
	nodes   []*cacheNode
	dir     string // the plugin's state, socket and targets
	state   string
	targets string
}

const (
	llamaPath   = "/models/llama-7b"
	mistralPath = "/models/mistral-7b"
)

func newCSINodeEnv(t *testing.T) *csiNodeEnv {
	t.Helper()
	requireFUSE(t)
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, sampleModel(t, llamaPath, 12<<20))
	e.write(t, sampleModel(t, mistralPath, 3<<20))
	n1 := e.startNode(t, "node-1", nil)
	n2 := e.startNode(t, "node-2", []string{n1.gossipAddr})
	n1.waitMembers(t, 2, 30*time.Second)
	n2.waitMembers(t, 2, 30*time.Second)
	ce := &csiNodeEnv{env: e, nodes: []*cacheNode{n1, n2}, dir: t.TempDir()}
	ce.state = filepath.Join(ce.dir, "state")
	ce.targets = filepath.Join(ce.dir, "pods")
	if err := os.MkdirAll(ce.targets, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupMounts(t, ce.dir)
	return ce
}

// startPlugin runs `csi node` for this environment: targets under
// ce.dir/pods (--kubelet-dir ce.dir) and, unless extra names its own
// --volumes-dir or --allow-request-metaurl, the test volume configured on
// the node.
func (ce *csiNodeEnv) startPlugin(t *testing.T, extra ...string) *csiProc {
	t.Helper()
	args := []string{"node", "--node-id", "test-node", "--state-dir", ce.state,
		"--cache-node", ce.nodes[0].peerAddr, "--token-file", ce.token, "--kubelet-dir", ce.dir}
	own := false
	for _, a := range extra {
		own = own || a == "--volumes-dir" || a == "--allow-request-metaurl"
	}
	if !own {
		args = append(args, "--volumes-dir", ce.volumesDir(t, ce.metaURL))
	}
	return startCSIProc(t, "csi node", filepath.Join(ce.dir, "csi.sock"), append(args, extra...)...)
}

// volumesDir writes a --volumes-dir that configures the test volume with
// metaURL and returns it.
func (ce *csiNodeEnv) volumesDir(t *testing.T, metaURL string) string {
	t.Helper()
	dir := filepath.Join(ce.dir, "volumes-dir")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ce.format.Name), []byte(metaURL), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (ce *csiNodeEnv) target(name string) string { return filepath.Join(ce.targets, name) }

func publish(t *testing.T, p *csiProc, req *csi.NodePublishVolumeRequest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := p.node().NodePublishVolume(ctx, req); err != nil {
		t.Fatalf("NodePublishVolume %s at %s: %v", req.VolumeId, req.TargetPath, err)
	}
}

func unpublish(t *testing.T, p *csiProc, id, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.node().NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		t.Fatalf("NodeUnpublishVolume %s at %s: %v", id, target, err)
	}
}

// checkReadOnly checks that writes through a target fail with EROFS.
func checkReadOnly(t *testing.T, target string) {
	t.Helper()
	for what, op := range map[string]func() error{
		"overwrite": func() error { return os.WriteFile(filepath.Join(target, "config.json"), []byte("{}"), 0o644) },
		"create":    func() error { return os.WriteFile(filepath.Join(target, "new-file"), []byte("x"), 0o644) },
		"mkdir":     func() error { return os.Mkdir(filepath.Join(target, "dir"), 0o755) },
		"remove":    func() error { return os.Remove(filepath.Join(target, "config.json")) },
		"chmod":     func() error { return os.Chmod(filepath.Join(target, "config.json"), 0o777) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s through %s: got %v, want EROFS", what, target, err)
		}
	}
}

// TestCSINodeSharedMount: two NodePublishVolume calls for one model at two
// targets, and a second model, share one JuiceFS mount; both targets read
// the model with the right sha256; writes fail with EROFS; unpublishing
// one leaves the other working; the shared mount goes after the last
// target and the delay.
func TestCSINodeSharedMount(t *testing.T) {
	ce := newCSINodeEnv(t)
	trusted := filepath.Join(ce.dir, "trusted-volumes")
	if err := os.MkdirAll(trusted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trusted, ce.format.Name), []byte(ce.metaURL), 0o600); err != nil {
		t.Fatal(err)
	}
	const unmountDelay = 2 * time.Second
	p := ce.startPlugin(t, "--unmount-delay", unmountDelay.String(), "--volumes-dir", trusted)
	want := ce.wantTree(llamaPath)
	t1, t2, t3 := ce.target("pod-1"), ce.target("pod-2"), ce.target("pod-3")

	publish(t, p, ce.publishReq("pv-llama-a", llamaPath, t1))
	publish(t, p, ce.publishReq("pv-llama-b", llamaPath, t2))
	publish(t, p, ce.publishReq("pv-mistral", mistralPath, t3))

	devs, lines := fuseSuperblocks(t, ce.dir)
	if len(devs) != 1 || len(lines) != 4 {
		t.Fatalf("FUSE mounts under the plugin's dirs: %d file systems in %d mounts %+v; want 1 shared JuiceFS mount in 4 (staging + 3 binds)", len(devs), len(lines), lines)
	}
	for _, ml := range lines {
		wantRoot := map[string]string{t1: llamaPath, t2: llamaPath, t3: mistralPath}[ml.point]
		if ml.point == filepath.Join(ce.state, "volumes", "models", "mnt") {
			wantRoot = "/"
		}
		if ml.root != wantRoot {
			t.Errorf("mount at %s has root %q, want %q", ml.point, ml.root, wantRoot)
		}
		opts := "," + ml.opts + ","
		if wantRoot != "/" && (!strings.Contains(opts, ",ro,") || !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,")) {
			t.Errorf("mount at %s has options %s, want ro, nosuid and nodev", ml.point, ml.opts)
		}
	}
	t.Logf("one JuiceFS mount (device %v) serves %d targets", devs, len(lines)-1)

	checkTree(t, readTree(t, t1), want)
	checkTree(t, readTree(t, t2), want)
	checkTree(t, readTree(t, t3), ce.wantTree(mistralPath))
	for _, name := range []string{".accesslog", ".stats", ".config", ".trash"} {
		if _, err := os.Lstat(filepath.Join(t1, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("target shows JuiceFS's %s: %v", name, err)
		}
	}
	checkReadOnly(t, t1)
	checkReadOnly(t, t2)

	// Publishing again is a no-op; another volume at a used target is not.
	publish(t, p, ce.publishReq("pv-llama-a", llamaPath, t1))
	_, err := p.node().NodePublishVolume(context.Background(), ce.publishReq("pv-mistral", mistralPath, t1))
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("another volume at a used target: %v, want AlreadyExists", err)
	}
	// A metadata engine the node does not trust is refused.
	untrusted := ce.publishReq("pv-z", llamaPath, ce.target("pod-z"))
	untrusted.Secrets["metaurl"] = "redis://127.0.0.1:1/1"
	if _, err := p.node().NodePublishVolume(context.Background(), untrusted); status.Code(err) != codes.PermissionDenied {
		t.Errorf("untrusted metadata engine: %v, want PermissionDenied", err)
	}
	// A model that does not exist, and a traversal, change nothing.
	_, err = p.node().NodePublishVolume(context.Background(), ce.publishReq("pv-x", "/models/nope", ce.target("pod-x")))
	if status.Code(err) != codes.NotFound {
		t.Errorf("missing model: %v, want NotFound", err)
	}
	_, err = p.node().NodePublishVolume(context.Background(), ce.publishReq("pv-y", "/models/../..", ce.target("pod-y")))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("traversal: %v, want InvalidArgument", err)
	}
	if strings.Contains(fmt.Sprint(err), ce.metaURL) {
		t.Error("an error holds the metadata URL")
	}

	// Symlinks: a model path through one is refused; a relative symlink
	// inside a model cannot climb above the bind root into other models.
	w, err := juicetest.OpenWriter(context.Background(), ce.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("/models/linked/weights.bin", []byte("weights")); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"/models/linked/up": "../llama-7b", "/models/alias": "llama-7b"} {
		if err := w.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	for _, path := range []string{"/models/alias", "/models/alias/nested"} {
		_, err = p.node().NodePublishVolume(context.Background(), ce.publishReq("pv-alias", path, ce.target("pod-alias")))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("publish through the symlink %s: %v, want InvalidArgument", path, err)
		}
	}
	t4 := ce.target("pod-4")
	publish(t, p, ce.publishReq("pv-linked", "/models/linked", t4))
	if dest, err := os.Readlink(filepath.Join(t4, "up")); err != nil || dest != "../llama-7b" {
		t.Errorf("readlink in the target: %q %v", dest, err)
	}
	staged := filepath.Join(ce.state, "volumes", "models", "mnt", "models", "linked", "up", "config.json")
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("the symlink does lead to another model in the volume (%v), so the next check would prove nothing", err)
	}
	if _, err := os.Stat(filepath.Join(t4, "up", "config.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a relative symlink in a model climbed above the bind root into another model: %v", err)
	}
	unpublish(t, p, "pv-linked", t4)

	// Stats and health of a published target.
	st, err := p.node().NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: "pv-llama-b", VolumePath: t2})
	if err != nil || len(st.GetUsage()) != 2 {
		t.Errorf("NodeGetVolumeStats: %v %v", st, err)
	}
	h, err := p.node().NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "pv-llama-b"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("NodeGetVolumeHealth of a healthy volume: %v %v", h, err)
	}

	unpublish(t, p, "pv-llama-a", t1)
	if _, err := os.Stat(t1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unpublished target is still there: %v", err)
	}
	checkTree(t, readTree(t, t2), want)
	// The delay runs from the last target's unpublish: the mount goes no
	// earlier than unmountDelay after it. An unpublish that started the
	// delay while a target still used the mount (here, pv-mistral's) would
	// remove it earlier than that, so the removal's time in the plugin's
	// log, against the start of the last unpublish, shows both.
	unpublish(t, p, "pv-mistral", t3)
	if devs, _ := fuseSuperblocks(t, ce.dir); len(devs) != 1 {
		t.Fatalf("the shared mount went while a target used it (%d mounts)", len(devs))
	}
	checkTree(t, readTree(t, t2), want)
	lastUnpublish := time.Now()
	unpublish(t, p, "pv-llama-b", t2)
	if devs, _ := fuseSuperblocks(t, ce.dir); len(devs) != 1 {
		t.Error("the shared mount went at once, not after the delay")
	}
	waitFUSEAtMost(t, ce.dir, 0, 20*time.Second)
	// The plugin logs the removal once it has unmounted and cleaned up.
	var removed time.Time
	pollUntil(t, "the plugin logs the idle mount's removal", 10*time.Second, func() error {
		var ok bool
		if removed, ok = p.logTime(t, `msg="idle shared mount removed"`, "volume="+ce.format.Name); !ok {
			return errors.New("no such line in its log")
		}
		return nil
	})
	// The log's times are truncated to the millisecond.
	if after := removed.Sub(lastUnpublish); after < unmountDelay-time.Millisecond {
		t.Errorf("the shared mount went %v after the last target's unpublish began, want no earlier than the %v delay: the delay started while a target used it", after, unmountDelay)
	} else {
		t.Logf("the shared mount went %v after the last target's unpublish began (delay %v)", after.Round(time.Millisecond), unmountDelay)
	}
	if pids := procsNaming(filepath.Join(ce.state, "volumes")); len(pids) > 0 {
		t.Errorf("processes still run for the removed mount: %v", pids)
	}
}

// TestCSINodeRestart: killing the node plugin and starting it again
// leaves published targets readable (the mounts run in their own
// sessions, through a launcher); killing the mount processes on purpose
// (SIGKILL to the JuiceFS supervisor and server) breaks the mount, and the
// restarted plugin repairs it at the same place and re-binds every target.
func TestCSINodeRestart(t *testing.T) {
	ce := newCSINodeEnv(t)
	// "env --" stands in for "nsenter --target 1 --mount --pid --": the
	// plugin copies its binary and token into the state dir and starts
	// the mount through the prefix.
	plugin := []string{"--unmount-delay", "30s", "--repair-interval", "0", "--launcher", "env --"}
	p := ce.startPlugin(t, plugin...)
	t1, t2 := ce.target("pod-1"), ce.target("pod-2")
	publish(t, p, ce.publishReq("pv-a", llamaPath, t1))
	publish(t, p, ce.publishReq("pv-b", mistralPath, t2))
	checkTree(t, readTree(t, t1), ce.wantTree(llamaPath))
	if _, err := os.Stat(filepath.Join(ce.state, "bin", "csi")); err != nil {
		t.Errorf("the launcher mode did not copy the mount binary: %v", err)
	}

	// 1. Kill the plugin; the targets keep working without it.
	p.kill()
	checkTree(t, readTree(t, t1), ce.wantTree(llamaPath))
	checkTree(t, readTree(t, t2), ce.wantTree(mistralPath))
	mountPIDs := procsNaming(filepath.Join(ce.state, "volumes", "models"))
	if len(mountPIDs) < 2 {
		t.Fatalf("want the JuiceFS supervisor and server, found %v", mountPIDs)
	}
	p.start()
	checkTree(t, readTree(t, t1), ce.wantTree(llamaPath))
	if now := procsNaming(filepath.Join(ce.state, "volumes", "models")); fmt.Sprint(sorted(now)) != fmt.Sprint(sorted(mountPIDs)) {
		t.Errorf("the restarted plugin replaced a healthy mount: processes %v, then %v", mountPIDs, now)
	}

	// 2. Kill the plugin and both mount processes: the mount is dead.
	p.kill()
	killed := killProcsNaming(filepath.Join(ce.state, "volumes", "models"))
	t.Logf("killed the mount processes %v", killed)
	waitTargetBroken(t, t1, 10*time.Second)
	start := time.Now()
	p.start()
	t.Logf("restarted plugin ready after %v (repair included)", time.Since(start).Round(time.Millisecond))
	checkTree(t, readTree(t, t1), ce.wantTree(llamaPath))
	checkTree(t, readTree(t, t2), ce.wantTree(mistralPath))
	checkReadOnly(t, t1)
	devs, lines := fuseSuperblocks(t, ce.dir)
	if len(devs) != 1 || len(lines) != 3 {
		t.Errorf("after the repair: %d file systems in %d mounts %+v; want 1 in 3 (no stale binds)", len(devs), len(lines), lines)
	}

	// The repaired plugin keeps serving: unpublish and publish again.
	unpublish(t, p, "pv-a", t1)
	publish(t, p, ce.publishReq("pv-c", llamaPath, ce.target("pod-3")))
	checkTree(t, readTree(t, ce.target("pod-3")), ce.wantTree(llamaPath))
}

func sorted(v []int) []int {
	out := append([]int(nil), v...)
	sort.Ints(out)
	return out
}

// TestCSIPublishToFirstByte measures the time from NodePublishVolume to
// the first byte of a weight shard readable at the target, for a model
// already warm in the ring: with the node's shared JuiceFS mount still up
// (another pod uses the volume) and with none (the plugin starts one).
func TestCSIPublishToFirstByte(t *testing.T) {
	ce := newCSINodeEnv(t)
	p := ce.startPlugin(t, "--unmount-delay", "500ms")
	// Warm the ring: read the model once through a target.
	warm := ce.target("warm")
	publish(t, p, ce.publishReq("pv-warm", llamaPath, warm))
	checkTree(t, readTree(t, warm), ce.wantTree(llamaPath))
	unpublish(t, p, "pv-warm", warm)
	waitFUSEAtMost(t, ce.dir, 0, 20*time.Second)

	measure := func(i int, id string) (publishDur, firstByte time.Duration) {
		target := ce.target(fmt.Sprintf("pod-%s-%d", id, i))
		start := time.Now()
		publish(t, p, ce.publishReq(fmt.Sprintf("pv-%s-%d", id, i), llamaPath, target))
		publishDur = time.Since(start)
		f, err := os.Open(filepath.Join(target, "model-00001-of-00002.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(f, b[:]); err != nil {
			t.Fatal(err)
		}
		firstByte = time.Since(start)
		f.Close()
		return publishDur, firstByte
	}
	const runs = 5
	var coldPub, coldFirst, warmPub, warmFirst []time.Duration
	ce.proxy.Reset()
	for i := range runs {
		pd, fb := measure(i, "cold")
		coldPub, coldFirst = append(coldPub, pd), append(coldFirst, fb)
		unpublish(t, p, fmt.Sprintf("pv-cold-%d", i), ce.target(fmt.Sprintf("pod-cold-%d", i)))
		waitFUSEAtMost(t, ce.dir, 0, 20*time.Second)
	}
	// Another pod keeps the shared mount up.
	publish(t, p, ce.publishReq("pv-keep", mistralPath, ce.target("keeper")))
	for i := range runs {
		pd, fb := measure(i, "warm")
		warmPub, warmFirst = append(warmPub, pd), append(warmFirst, fb)
		unpublish(t, p, fmt.Sprintf("pv-warm-%d", i), ce.target(fmt.Sprintf("pod-warm-%d", i)))
	}
	if n := ce.c.OriginBlockGets(); n != 0 {
		t.Errorf("the measured reads caused %d origin GETs of data blocks: the model was not warm in the ring", n)
	}
	t.Logf("NodePublishVolume -> first byte, model warm in the ring, %d runs each (min / median / max):", runs)
	t.Logf("  no shared mount on the node (plugin starts one): publish %s, first byte %s", stats(coldPub), stats(coldFirst))
	t.Logf("  shared mount already up (bind only):             publish %s, first byte %s", stats(warmPub), stats(warmFirst))
}

func stats(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(x time.Duration) string { return x.Round(100 * time.Microsecond).String() }
	return r(s[0]) + " / " + r(s[len(s)/2]) + " / " + r(s[len(s)-1])
}
