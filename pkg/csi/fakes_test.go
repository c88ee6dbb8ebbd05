package csi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/clock/clocktest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mountutils "k8s.io/mount-utils"
)

// fakeMounter is an in-memory Mounter: FUSE mounts by directory, binds by
// target, each bind remembering the FUSE generation (pid) it was made
// from, so that a remount leaves old binds broken as in the kernel.
type fakeMounter struct {
	mu      sync.Mutex
	fuse    map[string]*fakeFUSE
	binds   map[string]fakeBind
	nextPID int
	starts  int
	stops   int
	// gate, when set, makes StartFUSE wait for a receive (entered, when
	// set, is signalled first).
	gate    chan struct{}
	entered chan struct{}
	// bindErr, when set, is what Bind returns.
	bindErr error
	// changed is closed at the next StopFUSE; nil until changes asks.
	changed chan struct{}
}

type fakeFUSE struct {
	pid      int
	broken   bool
	procGone bool
}

type fakeBind struct {
	dir, rel string
	pid      int
	flags    BindFlags
}

func newFakeMounter() *fakeMounter {
	return &fakeMounter{fuse: map[string]*fakeFUSE{}, binds: map[string]fakeBind{}, nextPID: 1000}
}

func (f *fakeMounter) StartFUSE(ctx context.Context, spec MountSpec) (Proc, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return Proc{}, ctx.Err()
		}
	}
	if _, err := os.Stat(spec.Dir); err != nil {
		return Proc{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fu := f.fuse[spec.Dir]; fu != nil {
		return Proc{}, fmt.Errorf("fake: %s already mounted", spec.Dir)
	}
	f.nextPID++
	f.starts++
	f.fuse[spec.Dir] = &fakeFUSE{pid: f.nextPID}
	return Proc{PID: f.nextPID, Start: uint64(f.nextPID) * 7}, nil
}

func (f *fakeMounter) StopFUSE(dir string, p Proc) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.fuse[dir]; ok {
		f.stops++
		delete(f.fuse, dir)
	}
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	return nil
}

// changes returns a channel closed at the next StopFUSE. Get it before
// checking the mounts.
func (f *fakeMounter) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// waitStopped waits, on f's StopFUSE signal, until the FUSE mount at dir
// is gone; at most 5s.
func (f *fakeMounter) waitStopped(t *testing.T, dir string) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		changed := f.changes()
		f.mu.Lock()
		_, mounted := f.fuse[dir]
		f.mu.Unlock()
		if !mounted {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for the FUSE mount at %s to stop", dir)
		}
	}
}

func (f *fakeMounter) Health(dir string) MountHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fu := f.fuse[dir]; fu != nil {
		if fu.broken {
			return MountBroken
		}
		return MountHealthy
	}
	if b, ok := f.binds[dir]; ok {
		if fu := f.fuse[b.dir]; fu != nil && !fu.broken && fu.pid == b.pid {
			return MountHealthy
		}
		return MountBroken
	}
	return MountMissing
}

func (f *fakeMounter) MountedAt(dir string) (mountutils.MountInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fu, ok := f.fuse[dir]; ok {
		return mountutils.MountInfo{MountPoint: dir, FsType: "fuse.juicefs", Major: 0, Minor: fu.pid}, true, nil
	}
	if b, ok := f.binds[dir]; ok {
		return mountutils.MountInfo{MountPoint: dir, FsType: "fuse.juicefs", Major: 0, Minor: b.pid}, true, nil
	}
	return mountutils.MountInfo{}, false, nil
}

func (f *fakeMounter) Bind(root, rel, target string, flags BindFlags) error {
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return fmt.Errorf("fake bind: target %s: %v", target, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bindErr != nil {
		return f.bindErr
	}
	fu := f.fuse[root]
	if fu == nil || fu.broken {
		return fmt.Errorf("fake bind: %s is not a healthy mount", root)
	}
	if _, ok := f.binds[target]; ok {
		return fmt.Errorf("fake bind: %s already bound", target)
	}
	f.binds[target] = fakeBind{dir: root, rel: rel, pid: fu.pid, flags: flags}
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.binds, target)
	return nil
}

func (f *fakeMounter) ProcessAlive(p Proc, dir string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	fu := f.fuse[dir]
	return fu != nil && fu.pid == p.PID && (p.Start == 0 || p.Start == uint64(p.PID)*7) && !fu.procGone && !fu.broken
}

// breakAll marks every FUSE mount dead (both mount processes killed).
func (f *fakeMounter) breakAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fu := range f.fuse {
		fu.broken = true
	}
}

func (f *fakeMounter) counts() (fuse, binds, starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fuse), len(f.binds), f.starts, f.stops
}

// fakeChecker answers checks from a table; models not in it exist.
type fakeChecker struct {
	mu    sync.Mutex
	errs  map[Model]error
	uuid  string
	calls int
	urls  []string // the metadata URLs checked, in order
	// gate, when set, makes Check wait for a receive (entered is
	// signalled first).
	gate    chan struct{}
	entered chan struct{}
}

func (c *fakeChecker) Check(ctx context.Context, metaURL string, m Model) (ModelInfo, error) {
	c.mu.Lock()
	c.calls++
	c.urls = append(c.urls, metaURL)
	gate, entered := c.gate, c.entered
	err := c.errs[m]
	uuid := c.uuid
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ModelInfo{}, status.FromContextError(ctx.Err()).Err()
		}
	}
	if uuid == "" {
		uuid = "11111111-2222-3333-4444-555555555555"
	}
	return ModelInfo{UUID: uuid}, err
}

func (c *fakeChecker) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

const testSecretURL = "redis://:Sup3rS3cretPassw0rd@127.0.0.1:6379/1"

func roCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code %v (%v), want %v", got, err, want)
	}
}

// mountDir returns the directory of volume's shared mount, which must be
// in the state.
func (tn *testNode) mountDir(t *testing.T, volume string) string {
	t.Helper()
	tn.mu.Lock()
	defer tn.mu.Unlock()
	sm := tn.state.Mounts[volume]
	if sm == nil {
		t.Fatalf("no shared mount of %s in the state", volume)
	}
	return sm.Dir
}

// waitUnmounted waits for an unmount of volume, whose FUSE mount is at dir
// (mountDir, taken before the unmount could start), that a timer has
// started: for the fake mounter to stop the mount (an event), then for the
// unmount to finish, by taking the volume lock it holds until done.
func (tn *testNode) waitUnmounted(t *testing.T, volume, dir string) {
	t.Helper()
	tn.fm.waitStopped(t, dir)
	tn.lockVolume(volume)()
}

// t0 is the start of a fake clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// withClock is a newTestNodeWith option that puts the node on clk.
func withClock(clk clock.Clock) func(*NodeOptions) {
	return func(o *NodeOptions) { o.Clock = clk }
}

// waitTimers waits until n timers or tickers are armed on clk.
func waitTimers(t *testing.T, clk *clocktest.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, n); err != nil {
		t.Fatalf("waiting for %d armed timers (%d armed): %v", n, clk.Waiters(), err)
	}
}

// receive waits for a signal on c, at most 5s.
func receive(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// testNode is a node service on a fake mounter and checker.
type testNode struct {
	*Node
	fm      *fakeMounter
	fc      *fakeChecker
	logs    *logBuffer
	dir     string
	targets string
	probe   error
}

func newTestNode(t *testing.T, fm *fakeMounter, fc *fakeChecker, dir string, delay time.Duration) *testNode {
	t.Helper()
	return newTestNodeWith(t, fm, fc, dir, delay, nil)
}

// newTestNodeWith is newTestNode with options changed by mod.
func newTestNodeWith(t *testing.T, fm *fakeMounter, fc *fakeChecker, dir string, delay time.Duration, mod func(*NodeOptions)) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	tn := &testNode{fm: fm, fc: fc, logs: &logBuffer{}, dir: dir, targets: filepath.Join(dir, "pods")}
	if err := os.MkdirAll(tn.targets, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "csi-binary")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("test-token-0123456789"), 0o600)
	o := NodeOptions{
		Version: "test", NodeID: "node-a", StateDir: filepath.Join(dir, "state"),
		MountBinary: bin, CacheNode: "127.0.0.1:1", TokenFile: tok, UnmountDelay: delay,
		KubeletDir: dir, AllowRequestMetaURL: true,
		Checker: fc, Mounter: fm, Logger: tn.logs.logger(),
		CacheProbe: func(context.Context) error { return tn.probe },
	}
	if mod != nil {
		mod(&o)
	}
	n, err := NewNode(o)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(context.Background())
	t.Cleanup(n.Close)
	tn.Node = n
	return tn
}

func (tn *testNode) publishReq(id, volume, path, target string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId: id, TargetPath: filepath.Join(tn.targets, target),
		VolumeCapability: roCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY),
		VolumeContext:    map[string]string{KeyVolume: volume, KeyPath: path},
		Secrets:          map[string]string{KeyMetaURL: testSecretURL},
	}
}

func (tn *testNode) publish(t *testing.T, id, volume, path, target string) {
	t.Helper()
	if _, err := tn.NodePublishVolume(context.Background(), tn.publishReq(id, volume, path, target)); err != nil {
		t.Fatalf("publish %s at %s: %v", id, target, err)
	}
}

func (tn *testNode) unpublish(t *testing.T, id, target string) {
	t.Helper()
	if _, err := tn.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: filepath.Join(tn.targets, target)}); err != nil {
		t.Fatalf("unpublish %s at %s: %v", id, target, err)
	}
}
