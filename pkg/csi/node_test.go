package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNodeSharesOneMountPerVolume: two models and three targets of one
// JuiceFS volume use one shared mount; it goes only after the last target
// and the delay.
func TestNodeSharesOneMountPerVolume(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	clk := clocktest.New(t0)
	const delay = 150 * time.Millisecond
	tn := newTestNodeWith(t, fm, fc, "", delay, withClock(clk))
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.publish(t, "vol-a2", "models", "/models/llama", "pod2")
	tn.publish(t, "vol-b", "models", "/models/mistral", "pod3")
	if fuse, binds, starts, _ := fm.counts(); fuse != 1 || binds != 3 || starts != 1 {
		t.Fatalf("fuse mounts %d, binds %d, starts %d; want 1, 3, 1", fuse, binds, starts)
	}
	for _, p := range []string{"pod1", "pod2", "pod3"} {
		if h := fm.Health(filepath.Join(tn.targets, p)); h != MountHealthy {
			t.Fatalf("%s is %v", p, h)
		}
	}
	tn.unpublish(t, "vol-a", "pod1")
	tn.unpublish(t, "vol-b", "pod3")
	if _, err := os.Stat(filepath.Join(tn.targets, "pod1")); !os.IsNotExist(err) {
		t.Errorf("unpublish left the target directory: %v", err)
	}
	// With a target left no idle unmount is armed, however long it waits.
	if w := clk.Waiters(); w != 0 {
		t.Fatalf("%d timers armed with a target left", w)
	}
	clk.Advance(2 * delay)
	if fuse, binds, _, stops := fm.counts(); fuse != 1 || binds != 1 || stops != 0 {
		t.Fatalf("with one target left: fuse %d binds %d stops %d; want 1, 1, 0", fuse, binds, stops)
	}
	tn.unpublish(t, "vol-a2", "pod2")
	waitTimers(t, clk, 1)
	clk.Advance(delay - time.Nanosecond)
	if fuse, _, _, stops := fm.counts(); fuse != 1 || stops != 0 || clk.Waiters() != 1 {
		t.Fatal("the idle unmount fired before the delay")
	}
	mnt := tn.mountDir(t, "models")
	clk.Advance(time.Nanosecond)
	tn.waitUnmounted(t, "models", mnt)
	if _, _, _, stops := fm.counts(); stops != 1 {
		t.Errorf("stops %d after the idle unmount, want 1", stops)
	}
	tn.mu.Lock()
	if n := len(tn.state.Mounts); n != 0 {
		t.Errorf("the state still holds %d mounts after the idle unmount", n)
	}
	tn.mu.Unlock()
	if _, err := os.Stat(filepath.Join(tn.dir, "state", "volumes", "models")); !os.IsNotExist(err) {
		t.Errorf("volume directory left behind: %v", err)
	}
}

// TestNodeRepublishWithinDelayKeepsMount: a pod restart (unpublish then
// publish within the delay) does not remount.
func TestNodeRepublishWithinDelayKeepsMount(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	clk := clocktest.New(t0)
	tn := newTestNodeWith(t, fm, fc, "", 200*time.Millisecond, withClock(clk))
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.unpublish(t, "vol-a", "pod1")
	waitTimers(t, clk, 1)
	clk.Advance(50 * time.Millisecond)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1-restarted")
	if w := clk.Waiters(); w != 0 {
		t.Fatalf("%d timers still armed after the publish", w)
	}
	clk.Advance(400 * time.Millisecond)
	if fuse, binds, starts, stops := fm.counts(); fuse != 1 || binds != 1 || starts != 1 || stops != 0 {
		t.Fatalf("fuse %d binds %d starts %d stops %d; want 1, 1, 1, 0", fuse, binds, starts, stops)
	}
}

// TestNodeZeroDelayUnmountsAtOnce: UnmountDelay 0.
func TestNodeZeroDelayUnmountsAtOnce(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", 0)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	mnt := tn.mountDir(t, "models")
	tn.unpublish(t, "vol-a", "pod1")
	tn.waitUnmounted(t, "models", mnt)
	if f, _, _, _ := fm.counts(); f != 0 {
		t.Errorf("%d FUSE mounts left after the unmount", f)
	}
}

// TestNodePublishIdempotentAndConflicts.
func TestNodePublishIdempotentAndConflicts(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	ctx := context.Background()
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1") // again
	if _, binds, starts, _ := fm.counts(); binds != 1 || starts != 1 {
		t.Fatalf("binds %d starts %d after a repeated publish", binds, starts)
	}
	// Another volume at the same target.
	_, err := tn.NodePublishVolume(ctx, tn.publishReq("vol-b", "models", "/models/other", "pod1"))
	wantCode(t, err, codes.AlreadyExists)
	// The same ID with another path at the same target.
	_, err = tn.NodePublishVolume(ctx, tn.publishReq("vol-a", "models", "/models/other", "pod1"))
	wantCode(t, err, codes.AlreadyExists)
	// Unpublish with another volume's ID: NotFound, the bind stays.
	_, err = tn.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-b", TargetPath: filepath.Join(tn.targets, "pod1")})
	wantCode(t, err, codes.NotFound)
	if h := fm.Health(filepath.Join(tn.targets, "pod1")); h != MountHealthy {
		t.Fatalf("a wrong unpublish broke the target: %v", h)
	}
	// Unpublishing twice, or an unknown target, is fine.
	tn.unpublish(t, "vol-a", "pod1")
	tn.unpublish(t, "vol-a", "pod1")
	tn.unpublish(t, "vol-x", "never-published")
	// The same volume name from another JuiceFS volume (UUID) while mounted.
	tn.publish(t, "vol-a", "models", "/models/llama", "pod2")
	fc.mu.Lock()
	fc.uuid = "99999999-0000-0000-0000-000000000000"
	fc.mu.Unlock()
	_, err = tn.NodePublishVolume(ctx, tn.publishReq("vol-c", "models", "/models/llama", "pod3"))
	wantCode(t, err, codes.FailedPrecondition)
}

// TestNodeAbortsConcurrentOperationOnSameVolume: a second call for a
// volume ID with one in flight gets Aborted; other IDs proceed.
func TestNodeAbortsConcurrentOperationOnSameVolume(t *testing.T) {
	fm := newFakeMounter()
	fc := &fakeChecker{gate: make(chan struct{}), entered: make(chan struct{}, 4)}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := tn.NodePublishVolume(ctx, tn.publishReq("vol-a", "models", "/models/llama", "pod1"))
		done <- err
	}()
	<-fc.entered // the first publish is in its metadata check
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := tn.NodePublishVolume(short, tn.publishReq("vol-a", "models", "/models/llama", "pod2"))
	wantCode(t, err, codes.Aborted)
	_, err = tn.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-a", TargetPath: filepath.Join(tn.targets, "pod1")})
	wantCode(t, err, codes.Aborted)
	// Another volume ID is not blocked by vol-a.
	other := make(chan error, 1)
	go func() {
		_, err := tn.NodePublishVolume(ctx, tn.publishReq("vol-b", "models", "/models/mistral", "pod3"))
		other <- err
	}()
	<-fc.entered
	fc.gate <- struct{}{}
	fc.gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if err := <-other; err != nil {
		t.Fatalf("publish of another volume: %v", err)
	}
	// Once done, the volume is free again.
	close(fc.gate)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod2")
}

// TestNodeAbortsWhileMounting: the in-flight lock covers the mount start
// too.
func TestNodeAbortsWhileMounting(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	fm.gate, fm.entered = make(chan struct{}), make(chan struct{}, 1)
	tn := newTestNode(t, fm, fc, "", time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := tn.NodePublishVolume(context.Background(), tn.publishReq("vol-a", "models", "/models/llama", "pod1"))
		done <- err
	}()
	receive(t, fm.entered, "the publish to reach the mount")
	_, err := tn.NodePublishVolume(context.Background(), tn.publishReq("vol-a", "models", "/models/llama", "pod1"))
	wantCode(t, err, codes.Aborted)
	close(fm.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNodeRestartRepairsBrokenMount: after a restart with the shared mount
// dead (both mount processes killed), the new plugin remounts at the same
// place and re-binds every target; a target whose directory is gone is
// forgotten; an unused healthy mount is removed after its delay.
func TestNodeRestartRepairsBrokenMount(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	dir := t.TempDir()
	tn := newTestNode(t, fm, fc, dir, 100*time.Millisecond)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.publish(t, "vol-b", "models", "/models/mistral", "pod2")
	tn.publish(t, "vol-c", "models", "/models/gone", "pod3")
	tn.publish(t, "vol-d", "other-vol", "/m/x", "pod4")
	tn.Close()

	fm.breakAll()
	// The pod of vol-c went away while the plugin was down.
	fm.Unmount(filepath.Join(tn.targets, "pod3"))
	os.Remove(filepath.Join(tn.targets, "pod3"))
	// other-vol's target was unpublished; its mount is healthy but idle.
	fm.Unmount(filepath.Join(tn.targets, "pod4"))
	os.Remove(filepath.Join(tn.targets, "pod4"))
	fm.mu.Lock()
	fm.fuse[filepath.Join(dir, "state", "volumes", "other-vol", "mnt")].broken = false
	fm.mu.Unlock()

	clk := clocktest.New(t0)
	tn2 := newTestNodeWith(t, fm, fc, dir, 100*time.Millisecond, withClock(clk))
	for _, p := range []string{"pod1", "pod2"} {
		if h := fm.Health(filepath.Join(tn.targets, p)); h != MountHealthy {
			t.Errorf("%s after restart: %v", p, h)
		}
	}
	if _, _, starts, _ := fm.counts(); starts != 3 {
		t.Errorf("mount starts %d, want 3 (2 before, 1 repair)", starts)
	}
	tn2.mu.Lock()
	sm := tn2.state.Mounts["models"]
	_, pod3 := sm.Targets[filepath.Join(tn.targets, "pod3")]
	tn2.mu.Unlock()
	if pod3 {
		t.Error("the gone target is still in the state")
	}
	waitTimers(t, clk, 1) // other-vol's idle unmount
	if tn2.mu.Lock(); tn2.state.Mounts["other-vol"] == nil {
		t.Error("the idle other-vol mount went before its delay")
	}
	tn2.mu.Unlock()
	mnt := tn2.mountDir(t, "other-vol")
	clk.Advance(100 * time.Millisecond)
	tn2.waitUnmounted(t, "other-vol", mnt)
	if tn2.mu.Lock(); tn2.state.Mounts["other-vol"] != nil {
		t.Error("the idle other-vol mount is still in the state after its unmount")
	}
	tn2.mu.Unlock()
	// The repaired mount works for new publishes and unpublishes.
	tn2.publish(t, "vol-e", "models", "/models/llama", "pod5")
	tn2.unpublish(t, "vol-a", "pod1")
	if fuse, _, starts, _ := fm.counts(); fuse != 1 || starts != 3 {
		t.Errorf("fuse %d starts %d after more publishes", fuse, starts)
	}
}

// TestNodeRestartAdoptsHealthyMount: a restart with healthy mounts does
// not remount.
func TestNodeRestartAdoptsHealthyMount(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	dir := t.TempDir()
	tn := newTestNode(t, fm, fc, dir, time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.Close()
	newTestNode(t, fm, fc, dir, time.Minute)
	if fuse, binds, starts, stops := fm.counts(); fuse != 1 || binds != 1 || starts != 1 || stops != 0 {
		t.Fatalf("fuse %d binds %d starts %d stops %d; want 1 1 1 0", fuse, binds, starts, stops)
	}
}

// TestNodeRepairOnPublish: a broken shared mount is repaired by the next
// publish, which also re-binds the existing targets.
func TestNodeRepairOnPublish(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	fm.breakAll()
	tn.publish(t, "vol-b", "models", "/models/llama", "pod2")
	for _, p := range []string{"pod1", "pod2"} {
		if h := fm.Health(filepath.Join(tn.targets, p)); h != MountHealthy {
			t.Errorf("%s: %v", p, h)
		}
	}
}

// TestNodeStatePersistedSafely: the state and metadata URL files are 0600
// and the state holds no secret; logs hold no secret.
func TestNodeStatePersistedSafely(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	fc.mu.Lock()
	fc.errs = map[Model]error{{Volume: "models", Path: "/models/nope"}: status.Error(codes.NotFound, "model path does not exist")}
	fc.mu.Unlock()
	_, err := tn.NodePublishVolume(context.Background(), tn.publishReq("vol-b", "models", "/models/nope", "pod2"))
	wantCode(t, err, codes.NotFound)
	st := filepath.Join(tn.dir, "state", "state.json")
	mu := filepath.Join(tn.dir, "state", "volumes", "models", "meta-url")
	for _, f := range []string{st, mu} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(st)
	if strings.Contains(string(b), "Sup3rS3cret") {
		t.Error("state.json holds the secret")
	}
	if b, _ := os.ReadFile(mu); string(b) != testSecretURL {
		t.Errorf("meta-url file holds %q", b)
	}
	if strings.Contains(tn.logs.String(), "Sup3rS3cret") {
		t.Error("the logs hold the secret")
	}
}

// TestNodeStatsAndHealth.
func TestNodeStatsAndHealth(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	ctx := context.Background()
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	target := filepath.Join(tn.targets, "pod1")
	for _, tc := range []struct {
		name string
		req  *csi.NodeGetVolumeStatsRequest
		code codes.Code
	}{
		{"no id", &csi.NodeGetVolumeStatsRequest{VolumePath: target}, codes.InvalidArgument},
		{"no path", &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-a"}, codes.InvalidArgument},
		{"unknown volume", &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-x", VolumePath: target}, codes.NotFound},
		{"other path", &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-a", VolumePath: "some/path"}, codes.NotFound},
		{"ok", &csi.NodeGetVolumeStatsRequest{VolumeId: "vol-a", VolumePath: target}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tn.NodeGetVolumeStats(ctx, tc.req)
			wantCode(t, err, tc.code)
			if tc.code == codes.OK && (len(resp.GetUsage()) != 2 || resp.Usage[0].Total <= 0) {
				t.Errorf("usage %v", resp.GetUsage())
			}
		})
	}
	h, err := tn.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-a"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 || h.GetVolumeHealth().GetVolumeId() != "vol-a" {
		t.Fatalf("healthy volume: %v %v", h, err)
	}
	_, err = tn.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-x"})
	wantCode(t, err, codes.NotFound)
	_, err = tn.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
	wantCode(t, err, codes.InvalidArgument)
	fm.breakAll()
	h, err = tn.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol-a", VolumePublishPath: target})
	if err != nil {
		t.Fatal(err)
	}
	var inaccessible bool
	for _, e := range h.GetVolumeHealth().GetHealthStatuses() {
		inaccessible = inaccessible || e.Status == csi.VolumeHealthErrorType_INACCESSIBLE
	}
	if !inaccessible {
		t.Errorf("broken volume reported %v", h.GetVolumeHealth().GetHealthStatuses())
	}
}

// TestNodeProbe: not ready until the cache node answers and the binary is
// there.
func TestNodeProbe(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	ctx := context.Background()
	ready := func() bool {
		r, err := tn.Identity().Probe(ctx, &csi.ProbeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetReady().GetValue()
	}
	if !ready() {
		t.Fatal("not ready with a cache node and a binary")
	}
	tn.probe = status.Error(codes.Unavailable, "connection refused")
	if ready() {
		t.Fatal("ready without a cache node")
	}
	tn.probe = nil
	os.Remove(filepath.Join(tn.dir, "csi-binary"))
	if ready() {
		t.Fatal("ready without the mount binary")
	}
}

// TestNodeValidation: every field is checked before anything happens,
// each with its code.
func TestNodeValidation(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	ok := func() *csi.NodePublishVolumeRequest { return tn.publishReq("vol-a", "models", "/models/llama", "pod1") }
	mode := func(m csi.VolumeCapability_AccessMode_Mode) func(*csi.NodePublishVolumeRequest) {
		return func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = roCap(m) }
	}
	path := func(p string) func(*csi.NodePublishVolumeRequest) {
		return func(r *csi.NodePublishVolumeRequest) { r.VolumeContext[KeyPath] = p }
	}
	for _, tc := range []struct {
		name string
		mod  func(*csi.NodePublishVolumeRequest)
		code codes.Code
	}{
		{"no volume id", func(r *csi.NodePublishVolumeRequest) { r.VolumeId = "" }, codes.InvalidArgument},
		{"no target", func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "" }, codes.InvalidArgument},
		{"relative target", func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "pods/x" }, codes.InvalidArgument},
		{"no capability", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = nil }, codes.InvalidArgument},
		{"no access mode", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability.AccessMode = nil }, codes.InvalidArgument},
		{"SINGLE_NODE_WRITER", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER), codes.InvalidArgument},
		{"SINGLE_NODE_SINGLE_WRITER", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER), codes.InvalidArgument},
		{"SINGLE_NODE_MULTI_WRITER", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER), codes.InvalidArgument},
		{"MULTI_NODE_SINGLE_WRITER", mode(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER), codes.InvalidArgument},
		{"MULTI_NODE_MULTI_WRITER", mode(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), codes.InvalidArgument},
		{"UNKNOWN mode", mode(csi.VolumeCapability_AccessMode_UNKNOWN), codes.InvalidArgument},
		{"SINGLE_NODE_READER_ONLY", mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), codes.OK},
		{"block", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}, codes.InvalidArgument},
		{"fsType ext4", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability.GetMount().FsType = "ext4" }, codes.InvalidArgument},
		{"mount flag rw", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability.GetMount().MountFlags = []string{"rw"} }, codes.InvalidArgument},
		{"mount group", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability.GetMount().VolumeMountGroup = "1000" }, codes.InvalidArgument},
		{"staging path", func(r *csi.NodePublishVolumeRequest) { r.StagingTargetPath = "/staging" }, codes.InvalidArgument},
		{"no context", func(r *csi.NodePublishVolumeRequest) { r.VolumeContext = nil }, codes.InvalidArgument},
		{"no volume", func(r *csi.NodePublishVolumeRequest) { delete(r.VolumeContext, KeyVolume) }, codes.InvalidArgument},
		{"bad volume name", func(r *csi.NodePublishVolumeRequest) { r.VolumeContext[KeyVolume] = "../etc" }, codes.InvalidArgument},
		{"no path", func(r *csi.NodePublishVolumeRequest) { delete(r.VolumeContext, KeyPath) }, codes.InvalidArgument},
		{"relative path", path("models/llama"), codes.InvalidArgument},
		{"dotdot escape", path("/models/../../etc"), codes.InvalidArgument},
		{"dotdot inside", path("/models/llama/../mistral"), codes.InvalidArgument},
		{"root", path("/"), codes.InvalidArgument},
		{"root via dots", path("/./"), codes.InvalidArgument},
		{"trash", path("/.trash/1"), codes.InvalidArgument},
		{"accesslog", path("/.accesslog"), codes.InvalidArgument},
		{"control char", path("/models/a\nb"), codes.InvalidArgument},
		{"unknown context key", func(r *csi.NodePublishVolumeRequest) { r.VolumeContext["subdir"] = "/x" }, codes.InvalidArgument},
		{"kubernetes context keys", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext["csi.storage.k8s.io/ephemeral"] = "true"
			r.VolumeContext["csi.storage.k8s.io/pod.name"] = "p"
			r.VolumeContext["storage.kubernetes.io/csiProvisionerIdentity"] = "x"
		}, codes.OK},
		{"no secret", func(r *csi.NodePublishVolumeRequest) { r.Secrets = nil }, codes.InvalidArgument},
		{"secret not a url", func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyMetaURL] = "hunter2" }, codes.InvalidArgument},
		{"secret prefix confines", func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyAllowedPrefix] = "/models/team-b" }, codes.PermissionDenied},
		{"secret prefix sibling", func(r *csi.NodePublishVolumeRequest) {
			r.Secrets[KeyAllowedPrefix] = "/models/ll"
		}, codes.PermissionDenied},
		{"secret prefix allows", func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyAllowedPrefix] = "/models" }, codes.OK},
		{"secret prefix bad", func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyAllowedPrefix] = "models" }, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok()
			req.TargetPath = filepath.Join(tn.targets, strings.ReplaceAll(tc.name, " ", "-"))
			tc.mod(req)
			before := fc.callCount()
			_, err := tn.NodePublishVolume(context.Background(), req)
			wantCode(t, err, tc.code)
			if tc.code != codes.OK && fc.callCount() != before {
				t.Error("the metadata was checked before the request was validated")
			}
			if err != nil && strings.Contains(err.Error(), "Sup3rS3cret") {
				t.Error("the error holds the secret")
			}
		})
	}
	// Unpublish validation.
	_, err := tn.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{TargetPath: "/x"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = tn.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "v"})
	wantCode(t, err, codes.InvalidArgument)
	if strings.Contains(tn.logs.String(), "Sup3rS3cret") {
		t.Error("the logs hold the secret")
	}
}

// TestNodeOptionsValidate.
func TestNodeOptionsValidate(t *testing.T) {
	good := NodeOptions{Version: "v", NodeID: "n", StateDir: "/var/lib/x", MountBinary: "/bin/csi", CacheNode: "127.0.0.1:9700", TokenFile: "/t"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*NodeOptions){
		"no version":     func(o *NodeOptions) { o.Version = "" },
		"no node id":     func(o *NodeOptions) { o.NodeID = "" },
		"relative state": func(o *NodeOptions) { o.StateDir = "state" },
		"no binary":      func(o *NodeOptions) { o.MountBinary = "" },
		"no cache node":  func(o *NodeOptions) { o.CacheNode = "" },
		"no token":       func(o *NodeOptions) { o.TokenFile = "" },
		"negative delay": func(o *NodeOptions) { o.UnmountDelay = -time.Second },
		"bad driver":     func(o *NodeOptions) { o.DriverName = "-bad-" },
		"empty launcher": func(o *NodeOptions) { o.Launcher = []string{"nsenter", ""} },
	} {
		o := good
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestNodeOptionsDefaults: EnsureDefaults fills every optional field and
// is idempotent; Validate changes nothing and reports every problem.
func TestNodeOptionsDefaults(t *testing.T) {
	var o NodeOptions
	o.EnsureDefaults()
	if o.DriverName != DriverName || o.MountTimeout != DefaultMountTimeout || o.CheckTimeout != DefaultCheckTimeout ||
		o.KubeletDir != DefaultKubeletDir || o.Checker == nil || o.Mounter == nil || o.CacheProbe == nil || o.Logger == nil {
		t.Fatalf("defaults not set: %+v", o)
	}
	m := o.Mounter
	o.EnsureDefaults()
	if o.Mounter != m {
		t.Error("a second EnsureDefaults replaced the mounter")
	}
	if o.UnmountDelay != 0 || o.RepairInterval != 0 {
		t.Error("EnsureDefaults changed a field whose zero is meaningful")
	}
	bad := NodeOptions{NodeID: "n", StateDir: "rel", MountBinary: "/b", CacheNode: "c", TokenFile: "/t", UnmountDelay: -1}
	err := bad.Validate()
	for _, want := range []string{"csi: invalid node options", "version is required", "StateDir must be an absolute path", "durations must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
	if bad.DriverName != "" || bad.MountTimeout != 0 {
		t.Error("Validate changed the options")
	}
	var c ControllerOptions
	c.EnsureDefaults()
	if c.DriverName != DriverName || c.CheckTimeout != DefaultCheckTimeout || c.Checker == nil || c.Logger == nil || c.PVCs != nil {
		t.Fatalf("controller defaults: %+v", c)
	}
	c.CheckTimeout = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "csi: invalid controller options") || !strings.Contains(err.Error(), "version is required") {
		t.Errorf("controller Validate: %v", err)
	}
}

// TestNodeSharedMountNeedsSameEngine: a publish whose secret names another
// metadata engine than the shared mount's is refused (a look-alike engine
// with the same volume name and UUID must not reach the volume's data); a
// rotated password for the same engine is accepted and stored.
func TestNodeSharedMountNeedsSameEngine(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	other := tn.publishReq("vol-b", "models", "/models/llama", "pod2")
	other.Secrets[KeyMetaURL] = "redis://:Sup3rS3cretPassw0rd@evil.example:6379/1"
	_, err := tn.NodePublishVolume(context.Background(), other)
	wantCode(t, err, codes.PermissionDenied)
	if strings.Contains(err.Error(), "Sup3rS3cret") {
		t.Error("the error holds the secret")
	}
	rotated := tn.publishReq("vol-c", "models", "/models/llama", "pod3")
	rotated.Secrets[KeyMetaURL] = "redis://:N3wPassw0rd@127.0.0.1:6379/1"
	if _, err := tn.NodePublishVolume(context.Background(), rotated); err != nil {
		t.Fatalf("rotated password: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(tn.dir, "state", "volumes", "models", "meta-url"))
	if string(b) != rotated.Secrets[KeyMetaURL] {
		t.Errorf("the stored metadata URL was not updated: %q", b)
	}
}

// TestNodeTrustedEngines: with TrustedEngines, only the listed volumes
// and metadata engines are mounted.
func TestNodeTrustedEngines(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNodeWith(t, fm, fc, "", time.Minute, func(o *NodeOptions) {
		o.TrustedEngines = map[string]string{"models": "redis://:other-password@127.0.0.1:6379/1"}
		o.AllowRequestMetaURL = false
	})
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1") // same engine, other password
	for name, mod := range map[string]func(*csi.NodePublishVolumeRequest){
		"other volume": func(r *csi.NodePublishVolumeRequest) { r.VolumeContext[KeyVolume] = "datasets" },
		"other engine": func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyMetaURL] = "redis://attacker.example:6379/1" },
		"other db":     func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyMetaURL] = "redis://:x@127.0.0.1:6379/2" },
		"other user":   func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyMetaURL] = "redis://admin:x@127.0.0.1:6379/1" },
	} {
		req := tn.publishReq("vol-b", "models", "/models/llama", "pod2")
		mod(req)
		before := fc.callCount()
		_, err := tn.NodePublishVolume(context.Background(), req)
		if status.Code(err) != codes.PermissionDenied || fc.callCount() != before {
			t.Errorf("%s: %v (checks %d -> %d), want PermissionDenied before any metadata call", name, err, before, fc.callCount())
		}
	}
	bad := NodeOptions{Version: "v", NodeID: "n", StateDir: "/s", MountBinary: "/b", CacheNode: "c", TokenFile: "/t",
		TrustedEngines: map[string]string{"Bad Name": "redis://h/1"}}
	if bad.Validate() == nil {
		t.Error("a bad TrustedEngines entry was accepted")
	}
}
