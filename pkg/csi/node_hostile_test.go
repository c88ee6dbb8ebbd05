package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	nodeEngineURL = "redis://tenant:N0deSecretPw@127.0.0.1:6379/1"
	craftedFrag   = "redis://tenant:x@127.0.0.1:6380/1#@127.0.0.1:6379/1"
	craftedQuery  = "redis://tenant:x@127.0.0.1:6380/1?tls-server-name=@127.0.0.1:6379/1"
)

// nodeFiles is the bytes of state.json and the models volume's meta-url.
func (tn *testNode) nodeFiles() (string, string) {
	s, _ := os.ReadFile(filepath.Join(tn.dir, "state", "state.json"))
	m, _ := os.ReadFile(filepath.Join(tn.dir, "state", "volumes", "models", "meta-url"))
	return string(s), string(m)
}

// crafted are the URLs of the Trust I finding and variants: each names
// engine A (127.0.0.1:6379) to a string comparison but dials B.
var crafted = []string{
	craftedFrag, craftedQuery,
	"redis://tenant:x@127.0.0.1:6380/1?route-read=@127.0.0.1:6379/1",
	"redis://tenant:x@127.0.0.1:6380/1?x=@127.0.0.1:6379/1",
	"redis://tenant:x@127.0.0.1:6380/1/@127.0.0.1:6379/1",
	"redis://tenant:x@127.0.0.1:6379/1?db=2",
	"redis://tenant:x@127.0.0.1:6379/1#",
}

// TestNodeCraftedMetaURLs: with the node's volumes configured, the crafted
// URLs are refused before any metadata call, with no shared mount yet and
// with one up, and change no file; the node's own URL is what is checked
// and mounted, whatever password the request carries.
func TestNodeCraftedMetaURLs(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNodeWith(t, fm, fc, "", time.Minute, func(o *NodeOptions) {
		o.TrustedEngines = map[string]string{"models": nodeEngineURL}
		o.AllowRequestMetaURL = false
	})
	try := func(round string) {
		for i, u := range crafted {
			s0, m0 := tn.nodeFiles()
			req := tn.publishReq("vol-evil", "models", "/models/llama", "evil-"+round)
			req.Secrets[KeyMetaURL] = u
			before := fc.callCount()
			_, err := tn.NodePublishVolume(context.Background(), req)
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.PermissionDenied {
				t.Errorf("%s: crafted URL %d: %v, want InvalidArgument or PermissionDenied", round, i, err)
			}
			if fc.callCount() != before {
				t.Errorf("%s: crafted URL %d reached the metadata check", round, i)
			}
			if s1, m1 := tn.nodeFiles(); s1 != s0 || m1 != m0 {
				t.Errorf("%s: crafted URL %d changed the state files", round, i)
			}
			if err != nil && strings.Contains(err.Error(), ":x@") {
				t.Errorf("the error holds the URL: %v", err)
			}
		}
		if _, _, starts, _ := fm.counts(); round == "no-mount" && starts != 0 {
			t.Errorf("%s: %d mounts started", round, starts)
		}
	}
	try("no-mount")
	// Without a metaurl, and with the same engine and another password:
	// the node's URL is checked and mounted.
	req := tn.publishReq("vol-a", "models", "/models/llama", "pod1")
	delete(req.Secrets, KeyMetaURL)
	if _, err := tn.NodePublishVolume(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req = tn.publishReq("vol-b", "models", "/models/llama", "pod2")
	req.Secrets[KeyMetaURL] = "redis://tenant:Other@127.0.0.1:6379/1"
	if _, err := tn.NodePublishVolume(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	urls := append([]string(nil), fc.urls...)
	fc.mu.Unlock()
	for _, u := range urls {
		if u != nodeEngineURL {
			t.Errorf("the check got a request's URL, not the node's")
		}
	}
	if _, m := tn.nodeFiles(); m != nodeEngineURL {
		t.Errorf("the meta-url file holds a request's URL")
	}
	try("mount-up")
	if _, _, starts, _ := fm.counts(); starts != 1 {
		t.Errorf("%d mounts started, want 1", starts)
	}
	for _, p := range []string{"pod1", "pod2"} {
		if h := fm.Health(filepath.Join(tn.targets, p)); h != MountHealthy {
			t.Errorf("%s: %v", p, h)
		}
	}
	if strings.Contains(tn.logs.String(), "N0deSecretPw") || !strings.Contains(tn.logs.String(), "127.0.0.1:6379/1") {
		t.Errorf("logs do not show the engine's address without its password:\n%s", tn.logs.String())
	}
}

// TestNodeRequestURLsNeedOptIn: a node without configured volumes refuses
// every publish unless AllowRequestMetaURL; with it, request URLs pass the
// identity parser, and a differing engine for a mounted volume is refused.
func TestNodeRequestURLsNeedOptIn(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNodeWith(t, fm, fc, "", time.Minute, func(o *NodeOptions) { o.AllowRequestMetaURL = false })
	_, err := tn.NodePublishVolume(context.Background(), tn.publishReq("vol-a", "models", "/models/llama", "pod1"))
	wantCode(t, err, codes.FailedPrecondition)
	if fc.callCount() != 0 {
		t.Error("the metadata was checked")
	}

	fm2, fc2 := newFakeMounter(), &fakeChecker{}
	tn2 := newTestNode(t, fm2, fc2, "", time.Minute) // AllowRequestMetaURL
	for i, u := range crafted {
		req := tn2.publishReq("vol-evil", "models", "/models/llama", "evil")
		req.Secrets[KeyMetaURL] = u
		if _, err := tn2.NodePublishVolume(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("crafted URL %d with opt-in: %v, want InvalidArgument", i, err)
		}
	}
	tn2.publish(t, "vol-a", "models", "/models/llama", "pod1")
	s0, m0 := tn2.nodeFiles()
	other := tn2.publishReq("vol-b", "models", "/models/llama", "pod2")
	other.Secrets[KeyMetaURL] = "redis://:x@127.0.0.1:6380/1"
	before := fc2.callCount()
	_, err = tn2.NodePublishVolume(context.Background(), other)
	wantCode(t, err, codes.PermissionDenied)
	if fc2.callCount() != before {
		t.Error("the other engine was checked (dialled) before it was refused")
	}
	if s1, m1 := tn2.nodeFiles(); s1 != s0 || m1 != m0 {
		t.Error("a refused publish changed the state files")
	}
}

// TestNodeFailedPublishPersistsNothing: a publish that fails at the bind
// leaves state.json and meta-url as they were (a rotated password is
// stored only by a publish that succeeded), and a fresh shared mount of a
// failed publish is stopped.
func TestNodeFailedPublishPersistsNothing(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	// A fresh mount whose bind fails goes again.
	fm.mu.Lock()
	fm.bindErr = errors.New("fake bind failure")
	fm.mu.Unlock()
	_, err := tn.NodePublishVolume(context.Background(), tn.publishReq("vol-a", "models", "/models/llama", "pod1"))
	wantCode(t, err, codes.Internal)
	if fuse, _, starts, stops := fm.counts(); fuse != 0 || starts != 1 || stops != 1 {
		t.Errorf("after a failed fresh publish: fuse %d starts %d stops %d; want 0 1 1", fuse, starts, stops)
	}
	if s, m := tn.nodeFiles(); strings.Contains(s, "models") || m != "" {
		t.Errorf("a failed publish left state: %q, meta-url %q", s, m)
	}
	if _, err := os.Stat(filepath.Join(tn.targets, "pod1")); !os.IsNotExist(err) {
		t.Errorf("the target made for a failed publish is still there: %v", err)
	}
	fm.mu.Lock()
	fm.bindErr = nil
	fm.mu.Unlock()
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	s0, m0 := tn.nodeFiles()
	fm.mu.Lock()
	fm.bindErr = errors.New("fake bind failure")
	fm.mu.Unlock()
	rotated := tn.publishReq("vol-b", "models", "/models/llama", "pod2")
	rotated.Secrets[KeyMetaURL] = "redis://:N3wPassw0rd@127.0.0.1:6379/1"
	_, err = tn.NodePublishVolume(context.Background(), rotated)
	wantCode(t, err, codes.Internal)
	if s1, m1 := tn.nodeFiles(); s1 != s0 || m1 != m0 {
		t.Errorf("a failed publish changed the state files (state equal %v, meta-url equal %v)", s1 == s0, m1 == m0)
	}
	fm.mu.Lock()
	fm.bindErr = nil
	fm.mu.Unlock()
	if _, err := tn.NodePublishVolume(context.Background(), rotated); err != nil {
		t.Fatal(err)
	}
	if _, m := tn.nodeFiles(); m != rotated.Secrets[KeyMetaURL] {
		t.Error("the rotated password was not stored after the publish succeeded")
	}
}

// TestNodeUnpublishConfined: unpublish acts only on targets under the
// kubelet's pods directory, never on the state dir or a shared mount, and
// deletes nothing the plugin did not create.
func TestNodeUnpublishConfined(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	outside := filepath.Join(tn.dir, "outside")
	os.MkdirAll(filepath.Join(outside, "empty"), 0o755)
	os.WriteFile(filepath.Join(outside, "file"), []byte("keep"), 0o644)
	insideFile := filepath.Join(tn.targets, "file")
	os.WriteFile(insideFile, []byte("keep"), 0o644)
	insideDir := filepath.Join(tn.targets, "kubelets-dir")
	os.Mkdir(insideDir, 0o755)
	staging := filepath.Join(tn.dir, "state", "volumes", "models", "mnt")
	un := func(id, target string) error {
		_, err := tn.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
		return err
	}
	for _, tc := range []struct {
		id, target string
		code       codes.Code
	}{
		{"vol-x", filepath.Join(outside, "file"), codes.InvalidArgument},
		{"vol-x", filepath.Join(outside, "empty"), codes.InvalidArgument},
		{"vol-x", "/etc/passwd", codes.InvalidArgument},
		{"vol-x", tn.targets, codes.InvalidArgument},
		{"vol-x", tn.targets + "/../outside/file", codes.InvalidArgument},
		{"vol-x", staging, codes.InvalidArgument},
		{"vol-a", staging, codes.InvalidArgument},
		{"vol-x", filepath.Join(tn.dir, "state"), codes.InvalidArgument},
		{"vol-x", insideFile, codes.OK},
		{"vol-x", insideDir, codes.OK},
	} {
		if err := un(tc.id, tc.target); status.Code(err) != tc.code {
			t.Errorf("unpublish %s at %s: %v, want %v", tc.id, tc.target, err, tc.code)
		}
	}
	// A symlink under the pods dir that leads out of it.
	link := filepath.Join(tn.targets, "link")
	os.Symlink(outside, link)
	if err := un("vol-x", filepath.Join(link, "empty")); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unpublish through a symlink out of the pods dir: %v", err)
	}
	for _, f := range []string{filepath.Join(outside, "file"), filepath.Join(outside, "empty"), insideFile, insideDir} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("%s was deleted: %v", f, err)
		}
	}
	if fuse, binds, _, stops := fm.counts(); fuse != 1 || binds != 1 || stops != 0 {
		t.Errorf("fuse %d binds %d stops %d; want 1 1 0", fuse, binds, stops)
	}
	// A target the kubelet made stays (the kubelet removes it); one the
	// plugin made goes.
	pre := filepath.Join(tn.targets, "pre-made")
	os.Mkdir(pre, 0o750)
	tn.publish(t, "vol-b", "models", "/models/llama", "pre-made")
	tn.unpublish(t, "vol-b", "pre-made")
	if _, err := os.Stat(pre); err != nil {
		t.Errorf("the kubelet's target directory was removed: %v", err)
	}
	tn.unpublish(t, "vol-a", "pod1")
	if _, err := os.Stat(filepath.Join(tn.targets, "pod1")); !os.IsNotExist(err) {
		t.Errorf("the target the plugin made is still there: %v", err)
	}
	// Publish targets are confined the same way.
	for _, target := range []string{filepath.Join(outside, "new"), staging, filepath.Join(tn.dir, "state", "x")} {
		req := tn.publishReq("vol-c", "models", "/models/llama", "x")
		req.TargetPath = target
		if _, err := tn.NodePublishVolume(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("publish at %s: %v, want InvalidArgument", target, err)
		}
	}
}

// TestNodeBoundsEveryString: over-long strings are InvalidArgument with a
// short message, before any work, and never stored.
func TestNodeBoundsEveryString(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	tn := newTestNode(t, fm, fc, "", time.Minute)
	long := strings.Repeat("a", 10<<10)
	many := map[string]string{}
	for i := range maxMapEntries + 1 {
		many["csi.storage.k8s.io/k"+strings.Repeat("x", i)] = "v"
	}
	for name, mod := range map[string]func(*csi.NodePublishVolumeRequest){
		"10 KB target": func(r *csi.NodePublishVolumeRequest) {
			r.TargetPath = filepath.Join(tn.targets, strings.Repeat("d/", 5<<10))
		},
		"10 KB component":       func(r *csi.NodePublishVolumeRequest) { r.TargetPath = filepath.Join(tn.targets, long) },
		"10 KB id":              func(r *csi.NodePublishVolumeRequest) { r.VolumeId = long },
		"129 byte id":           func(r *csi.NodePublishVolumeRequest) { r.VolumeId = strings.Repeat("i", 129) },
		"id with a newline":     func(r *csi.NodePublishVolumeRequest) { r.VolumeId = "a\nb" },
		"10 KB secret value":    func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyAllowedPrefix] = "/" + long },
		"10 KB secret key":      func(r *csi.NodePublishVolumeRequest) { r.Secrets[long] = "x" },
		"10 KB context key":     func(r *csi.NodePublishVolumeRequest) { r.VolumeContext["csi.storage.k8s.io/"+long] = "x" },
		"10 KB context value":   func(r *csi.NodePublishVolumeRequest) { r.VolumeContext["csi.storage.k8s.io/pod.name"] = long },
		"65 context keys":       func(r *csi.NodePublishVolumeRequest) { maps(r.VolumeContext, many) },
		"10 KB publish context": func(r *csi.NodePublishVolumeRequest) { r.PublishContext = map[string]string{"k": long} },
		"10 KB staging path":    func(r *csi.NodePublishVolumeRequest) { r.StagingTargetPath = "/" + long },
		"10 KB metadata URL":    func(r *csi.NodePublishVolumeRequest) { r.Secrets[KeyMetaURL] = testSecretURL + "?read-timeout=" + long },
		"3 KB metadata URL": func(r *csi.NodePublishVolumeRequest) {
			r.Secrets[KeyMetaURL] = testSecretURL + "?read-timeout=" + long[:3000]
		},
		"10 KB mount flag": func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability.GetMount().MountFlags = []string{long} },
		"17 mount flags": func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.GetMount().MountFlags = strings.Split(strings.Repeat("ro,", 17)[:51], ",")
		},
	} {
		req := tn.publishReq("vol-a", "models", "/models/llama", "pod-long")
		mod(req)
		_, err := tn.NodePublishVolume(context.Background(), req)
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); len(msg) > 512 || strings.Contains(msg, "Sup3rS3cret") {
			t.Errorf("%s: message of %d bytes: %.200s", name, len(msg), msg)
		}
	}
	if fc.callCount() != 0 {
		t.Error("an over-long request reached the metadata check")
	}
	if s, _ := tn.nodeFiles(); strings.Contains(s, long[:200]) {
		t.Error("state.json holds an over-long input")
	}
	for name, req := range map[string]*csi.NodeUnpublishVolumeRequest{
		"10 KB id":     {VolumeId: long, TargetPath: filepath.Join(tn.targets, "x")},
		"10 KB target": {VolumeId: "v", TargetPath: filepath.Join(tn.targets, strings.Repeat("d/", 5<<10))},
	} {
		_, err := tn.NodeUnpublishVolume(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("unpublish %s: %v", name, err)
		}
	}
	_, err := tn.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: long, VolumePath: "/x"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = tn.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: long})
	wantCode(t, err, codes.InvalidArgument)
}

func maps(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

// TestNodeRepairsMountWhoseProcessIsGone: a shared mount that still
// answers a stat but whose mount processes are gone is remounted and its
// targets re-bound, at start and on publish.
func TestNodeRepairsMountWhoseProcessIsGone(t *testing.T) {
	fm, fc := newFakeMounter(), &fakeChecker{}
	dir := t.TempDir()
	tn := newTestNode(t, fm, fc, dir, time.Minute)
	tn.publish(t, "vol-a", "models", "/models/llama", "pod1")
	tn.Close()
	staging := filepath.Join(dir, "state", "volumes", "models", "mnt")
	fm.mu.Lock()
	fm.fuse[staging].procGone = true
	fm.mu.Unlock()
	tn2 := newTestNode(t, fm, fc, dir, time.Minute)
	if _, _, starts, stops := fm.counts(); starts != 2 || stops != 1 {
		t.Errorf("starts %d stops %d after the restart; want 2 1 (a remount)", starts, stops)
	}
	if h := fm.Health(filepath.Join(tn.targets, "pod1")); h != MountHealthy {
		t.Errorf("pod1 after the repair: %v", h)
	}
	// And on publish.
	fm.mu.Lock()
	fm.fuse[staging].procGone = true
	fm.mu.Unlock()
	tn2.publish(t, "vol-b", "models", "/models/llama", "pod2")
	if _, _, starts, _ := fm.counts(); starts != 3 {
		t.Errorf("starts %d after a publish on a mount without process; want 3", starts)
	}
	for _, p := range []string{"pod1", "pod2"} {
		if h := fm.Health(filepath.Join(tn.targets, p)); h != MountHealthy {
			t.Errorf("%s: %v", p, h)
		}
	}
}

// TestParseProcStat: the start time and session of /proc/PID/stat lines,
// comm with spaces and parentheses included.
func TestParseProcStat(t *testing.T) {
	line := "1234 (juicefs (x) y) S 1 1234 1234 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 12 0 987654 1000 200 18446744073709551615"
	st, ok := parseProcStat(line)
	if !ok || st.state != 'S' || st.ppid != 1 || st.session != 1234 || st.start != 987654 {
		t.Fatalf("%+v %v", st, ok)
	}
	if _, ok := parseProcStat("1234 (x) S 1"); ok {
		t.Error("a short line parsed")
	}
	if me, ok := procStat(os.Getpid()); !ok || me.start == 0 {
		t.Errorf("own stat: %+v %v", me, ok)
	}
}
