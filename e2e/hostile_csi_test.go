package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/juice"
)

// hostileEnv is a node plugin deployment plus a look-alike metadata engine:
// a second real Redis holding a copy of the volume's metadata (same name,
// same UUID) in which another team's model was renamed into the caller's
// allowed prefix, at /models/llama-7b.
type hostileEnv struct {
	*csiNodeEnv
	goodURL string        // the volume's engine (A), with a tenant's password
	addrA   string        // A's host:port
	addrB   string        // the look-alike's host:port
	db      int           // the database number, the same in both
	b       *redis.Client // one connection to B, for its connection count
	bBase   int64         // B's total_connections_received after setup
}

const (
	teamBPath     = "/teams/b/secret-model"
	tenantUser    = "tenant"
	tenantPass    = "pw-a-0123456789"
	lookalikePass = "x"
)

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	ce := newCSINodeEnv(t)
	ce.write(t, sampleModel(t, teamBPath, 1<<20))
	u, err := url.Parse(ce.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	db, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	he := &hostileEnv{csiNodeEnv: ce, addrA: u.Host, db: db}
	ctx := context.Background()
	// A: the tenant's user, with a password.
	ra := redis.NewClient(&redis.Options{Addr: he.addrA, DB: db})
	defer ra.Close()
	if err := ra.Do(ctx, "ACL", "SETUSER", tenantUser, "on", ">"+tenantPass, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	he.goodURL = fmt.Sprintf("redis://%s:%s@%s/%d", tenantUser, tenantPass, he.addrA, db)

	// B: a copy of the volume's keys (DUMP/RESTORE), the same user with
	// the attacker's password.
	rB, err := realtest.RunRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rB.Close)
	he.addrB = rB.Addr
	rb := redis.NewClient(&redis.Options{Addr: he.addrB, DB: db})
	defer rb.Close()
	if err := rb.Do(ctx, "ACL", "SETUSER", tenantUser, "on", ">"+lookalikePass, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	var cursor uint64
	copied := 0
	for {
		keys, next, err := ra.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			dump, err := ra.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if err := rb.RestoreReplace(ctx, k, 0, dump).Err(); err != nil {
				t.Fatal(err)
			}
			copied++
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	// In B, team B's model takes the place of /models/llama-7b.
	bURL := fmt.Sprintf("redis://%s:%s@%s/%d", tenantUser, lookalikePass, he.addrB, db)
	conf := meta.DefaultConf()
	conf.NoBGJob = true
	m := meta.NewClient(bURL, conf)
	if _, err := m.Load(true); err != nil {
		t.Fatal(err)
	}
	rename := func(from, to string) {
		src, err := juice.LookupDir(ctx, m, filepath.Dir(from))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := juice.LookupDir(ctx, m, filepath.Dir(to))
		if err != nil {
			t.Fatal(err)
		}
		var ino meta.Ino
		var attr meta.Attr
		if st := m.Rename(meta.Background(), src, filepath.Base(from), dst, filepath.Base(to), 0, &ino, &attr); st != 0 {
			t.Fatalf("rename %s %s in the look-alike: %v", from, to, st)
		}
	}
	rename(llamaPath, llamaPath+"-orig")
	rename(teamBPath, llamaPath)
	m.Shutdown()
	t.Logf("look-alike engine %s: %d keys copied from %s, %s renamed to %s", he.addrB, copied, he.addrA, teamBPath, llamaPath)

	he.b = redis.NewClient(&redis.Options{Addr: he.addrB, PoolSize: 1, MinIdleConns: 1})
	t.Cleanup(func() { he.b.Close() })
	he.bBase = he.bConnections(t)
	return he
}

// bConnections is the number of connections B has received (our own one
// connection included once).
func (he *hostileEnv) bConnections(t *testing.T) int64 {
	t.Helper()
	info, err := he.b.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_connections_received in INFO")
	return 0
}

// crafted are metadata URLs that name engine A to a string comparison (with
// the password cut out between the first ':' and the last '@') but make
// go-redis dial the look-alike B, and variants.
func (he *hostileEnv) crafted() map[string]string {
	a, b, db := he.addrA, he.addrB, he.db
	return map[string]string{
		"fragment":          fmt.Sprintf("redis://%s:%s@%s/%d#@%s/%d", tenantUser, lookalikePass, b, db, a, db),
		"tls-server-name":   fmt.Sprintf("redis://%s:%s@%s/%d?tls-server-name=@%s/%d", tenantUser, lookalikePass, b, db, a, db),
		"route-read":        fmt.Sprintf("redis://%s:%s@%s/%d?route-read=@%s/%d", tenantUser, lookalikePass, b, db, a, db),
		"unknown-query-key": fmt.Sprintf("redis://%s:%s@%s/%d?x=@%s/%d", tenantUser, lookalikePass, b, db, a, db),
		"path":              fmt.Sprintf("redis://%s:%s@%s/%d/@%s/%d", tenantUser, lookalikePass, b, db, a, db),
		"plain-other":       fmt.Sprintf("redis://%s:%s@%s/%d", tenantUser, lookalikePass, b, db),
		"db-query":          fmt.Sprintf("redis://%s:%s@%s/%d?db=%d", tenantUser, tenantPass, a, db, db+1),
	}
}

func (he *hostileEnv) req(id, path, target, metaURL string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId: id, TargetPath: target, VolumeCapability: roCapability(),
		VolumeContext: map[string]string{"volume": he.format.Name, "path": path},
		Secrets:       map[string]string{"metaurl": metaURL, "allowedPrefix": "/models"},
	}
}

// stateBytes is state.json and the volume's meta-url ("" when missing).
func (he *hostileEnv) stateBytes() (state, metaURL string) {
	s, _ := os.ReadFile(filepath.Join(he.state, "state.json"))
	m, _ := os.ReadFile(filepath.Join(he.state, "volumes", he.format.Name, "meta-url"))
	return string(s), string(m)
}

// tryCrafted publishes the model path with every crafted URL (but those
// named in skip) and checks that none is accepted, B is never dialled, no
// FUSE file system is added and the state files keep their bytes. It
// returns how many were accepted.
func (he *hostileEnv) tryCrafted(t *testing.T, p *csiProc, round string, skip ...string) int {
	t.Helper()
	accepted := 0
	for name, u := range he.crafted() {
		if slices.Contains(skip, name) {
			continue
		}
		s0, m0 := he.stateBytes()
		devs0, _ := fuseSuperblocks(t, he.dir)
		target := he.target("evil-" + round + "-" + name)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		_, err := p.node().NodePublishVolume(ctx, he.req("pv-evil-"+name, llamaPath, target, u))
		cancel()
		if err == nil {
			accepted++
			leak := ""
			if got := readTree(t, target); fmt.Sprint(got) == fmt.Sprint(he.wantTree(teamBPath)) {
				leak = " and the target shows team B's model"
			}
			t.Errorf("%s: crafted URL %q accepted%s", round, name, leak)
			unpublish(t, p, "pv-evil-"+name, target)
			waitFUSEAtMost(t, he.dir, len(devs0), 30*time.Second)
			continue
		}
		t.Logf("%s: crafted URL %q refused: %v", round, name, status.Code(err))
		if strings.Contains(err.Error(), lookalikePass+"@") || strings.Contains(err.Error(), tenantPass) {
			t.Errorf("%s: the error holds a password: %v", round, err)
		}
		if devs, lines := fuseSuperblocks(t, he.dir); len(devs) != len(devs0) {
			t.Errorf("%s: %q changed the FUSE mounts: %d file systems, before %d (%+v)", round, name, len(devs), len(devs0), lines)
		}
		if s1, m1 := he.stateBytes(); s1 != s0 || m1 != m0 {
			t.Errorf("%s: %q changed the state: state.json equal %v, meta-url equal %v", round, name, s1 == s0, m1 == m0)
		}
		if _, err := os.Lstat(target); err == nil {
			if ms := mountsUnder(t, target); len(ms) > 0 {
				t.Errorf("%s: %q left a mount at the target: %+v", round, name, ms)
			}
		}
	}
	if n := he.bConnections(t); n != he.bBase {
		t.Errorf("%s: the look-alike engine received %d connections", round, n-he.bBase)
	}
	return accepted
}

// TestHostileCSIMetaURL: crafted metadata URLs naming a look-alike engine
// get nothing, with no shared mount yet and with one up; a repair after
// them still mounts the real engine; the existing pod keeps reading the
// right bytes.
func TestHostileCSIMetaURL(t *testing.T) {
	he := newHostileEnv(t)
	trusted := filepath.Join(he.dir, "trusted-volumes")
	if err := os.MkdirAll(trusted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trusted, he.format.Name), []byte(he.goodURL), 0o600); err != nil {
		t.Fatal(err)
	}
	p := he.startPlugin(t, "--unmount-delay", "0s", "--repair-interval", "0", "--volumes-dir", trusted)
	want := he.wantTree(llamaPath)

	// 1. No shared mount yet.
	accepted := he.tryCrafted(t, p, "no-mount")

	// 2. An existing pod, the shared mount up.
	pod1 := he.target("pod-1")
	publish(t, p, he.req("pv-1", llamaPath, pod1, he.goodURL))
	checkTree(t, readTree(t, pod1), want)
	accepted += he.tryCrafted(t, p, "mount-up")
	checkTree(t, readTree(t, pod1), want)

	// 3. A repair after them (the mount processes die, the plugin
	// restarts) mounts engine A again.
	p.kill()
	killProcsNaming(filepath.Join(he.state, "volumes", he.format.Name))
	waitTargetBroken(t, pod1, 20*time.Second)
	p.start()
	got := readTree(t, pod1)
	if fmt.Sprint(got) == fmt.Sprint(he.wantTree(teamBPath)) {
		t.Errorf("after the repair the existing pod reads team B's model: the shared mount was remade on the look-alike")
	}
	checkTree(t, got, want)
	if n := he.bConnections(t); n != he.bBase {
		t.Errorf("the look-alike engine received %d connections", n-he.bBase)
	}

	// 4. Valid publishes still work.
	pod2 := he.target("pod-2")
	publish(t, p, he.req("pv-2", mistralPath, pod2, he.goodURL))
	checkTree(t, readTree(t, pod2), he.wantTree(mistralPath))
	unpublish(t, p, "pv-2", pod2)
	unpublish(t, p, "pv-1", pod1)
	waitFUSEAtMost(t, he.dir, 0, 30*time.Second)
	p.kill()

	// 5. A node without configured volumes refuses request URLs unless
	// the admin opted in; opted in, the crafted URLs are still refused.
	p2 := he.startPlugin(t, "--unmount-delay", "0s", "--repair-interval", "0", "--volumes-dir", "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	_, err := p2.node().NodePublishVolume(ctx, he.req("pv-3", llamaPath, he.target("pod-3"), he.goodURL))
	cancel()
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a node without --volumes-dir took a request's metadata URL: %v, want FailedPrecondition", err)
	} else {
		t.Logf("no --volumes-dir, no opt-in: %v", err)
	}
	p2.kill()
	p3 := he.startPlugin(t, "--unmount-delay", "0s", "--repair-interval", "0", "--allow-request-metaurl")
	// With the opt-in, a plain URL of another engine is what the admin
	// allowed requests to choose while the volume has no shared mount;
	// the ambiguous ones stay refused.
	accepted += he.tryCrafted(t, p3, "opt-in", "plain-other")
	pod4 := he.target("pod-4")
	publish(t, p3, he.req("pv-4", llamaPath, pod4, he.goodURL))
	checkTree(t, readTree(t, pod4), want)
	accepted += he.tryCrafted(t, p3, "opt-in-mount-up")
	checkTree(t, readTree(t, pod4), want)
	unpublish(t, p3, "pv-4", pod4)
	t.Logf("%d of %d crafted URLs accepted (four rounds)", accepted, 4*len(he.crafted())-1)
	if n := he.bConnections(t); n != he.bBase {
		t.Errorf("the look-alike engine received %d connections", n-he.bBase)
	}
}

// TestHostileCSIUnpublish: NodeUnpublishVolume stays inside its scope: an
// unknown volume ID with a regular file or an empty directory outside the
// kubelet's pods directory deletes nothing; the plugin's own state and
// shared mount are refused as targets.
func TestHostileCSIUnpublish(t *testing.T) {
	ce := newCSINodeEnv(t)
	p := ce.startPlugin(t, "--unmount-delay", "0s", "--repair-interval", "0")
	pod1 := ce.target("pod-1")
	publish(t, p, ce.publishReq("pv-1", llamaPath, pod1))
	want := ce.wantTree(llamaPath)
	outside := filepath.Join(ce.dir, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "empty-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "file"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	insideFile := ce.target("not-a-dir")
	if err := os.WriteFile(insideFile, []byte("keep me too"), 0o644); err != nil {
		t.Fatal(err)
	}
	insideDir := ce.target("someone-elses-dir")
	if err := os.Mkdir(insideDir, 0o755); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(ce.state, "volumes", ce.format.Name, "mnt")
	un := func(id, target string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := p.node().NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
		return err
	}
	for _, tc := range []struct {
		name, id, target string
		code             codes.Code
	}{
		{"file outside the pods dir", "pv-unknown", filepath.Join(outside, "file"), codes.InvalidArgument},
		{"empty dir outside the pods dir", "pv-unknown", filepath.Join(outside, "empty-dir"), codes.InvalidArgument},
		{"the state dir", "pv-unknown", ce.state, codes.InvalidArgument},
		{"the shared mount, unknown id", "pv-unknown", staging, codes.InvalidArgument},
		{"the shared mount, the pod's id", "pv-1", staging, codes.InvalidArgument},
		{"a model dir in the shared mount", "pv-1", filepath.Join(staging, "models"), codes.InvalidArgument},
		{"a regular file inside the pods dir", "pv-unknown", insideFile, codes.OK},
		{"someone's empty dir inside the pods dir", "pv-unknown", insideDir, codes.OK},
	} {
		err := un(tc.id, tc.target)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		} else {
			t.Logf("%s: %v", tc.name, status.Code(err))
		}
	}
	for _, f := range []string{filepath.Join(outside, "file"), filepath.Join(outside, "empty-dir"), insideFile, insideDir} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("unpublish deleted %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "file")); string(b) != "keep me" {
		t.Errorf("the outside file now holds %q", b)
	}
	if devs, _ := fuseSuperblocks(t, ce.state); len(devs) != 1 {
		t.Errorf("the shared mount is gone (%d FUSE file systems under the state dir)", len(devs))
	}
	checkTree(t, readTree(t, pod1), want)
	unpublish(t, p, "pv-1", pod1)
	if _, err := os.Stat(pod1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target the plugin made is still there: %v", err)
	}
}

// TestHostileCSILongInputs: over-long strings in requests are
// InvalidArgument and never stored.
func TestHostileCSILongInputs(t *testing.T) {
	ce := newCSINodeEnv(t)
	p := ce.startPlugin(t, "--unmount-delay", "0s", "--repair-interval", "0")
	long := strings.Repeat("a", 10<<10)
	for _, tc := range []struct {
		name string
		mod  func(r *csi.NodePublishVolumeRequest)
	}{
		{"10 KB target path", func(r *csi.NodePublishVolumeRequest) {
			r.TargetPath = ce.target(strings.Repeat("d/", 5<<10))
		}},
		{"10 KB target component", func(r *csi.NodePublishVolumeRequest) { r.TargetPath = ce.target(long) }},
		{"10 KB volume id", func(r *csi.NodePublishVolumeRequest) { r.VolumeId = long }},
		{"10 KB secret value", func(r *csi.NodePublishVolumeRequest) { r.Secrets["allowedPrefix"] = "/" + long }},
		{"10 KB secret key", func(r *csi.NodePublishVolumeRequest) { r.Secrets[long] = "x" }},
		{"10 KB context key", func(r *csi.NodePublishVolumeRequest) { r.VolumeContext["csi.storage.k8s.io/"+long] = "x" }},
		{"10 KB context value", func(r *csi.NodePublishVolumeRequest) { r.VolumeContext["csi.storage.k8s.io/pod.name"] = long }},
		{"10 KB staging path", func(r *csi.NodePublishVolumeRequest) { r.StagingTargetPath = "/" + long }},
		{"10 KB metadata URL", func(r *csi.NodePublishVolumeRequest) { r.Secrets["metaurl"] = ce.metaURL + "?read-timeout=" + long }},
		{"10 KB mount flag", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability.GetMount().MountFlags = []string{long}
		}},
	} {
		req := ce.publishReq("pv-long", llamaPath, ce.target("pod-long"))
		tc.mod(req)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		_, err := p.node().NodePublishVolume(ctx, req)
		cancel()
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("publish with a %s: %v, want InvalidArgument", tc.name, err)
			if err == nil {
				unpublish(t, p, req.VolumeId, req.TargetPath)
			}
		} else if len(status.Convert(err).Message()) > 1024 {
			t.Errorf("publish with a %s: the message is %d bytes long", tc.name, len(status.Convert(err).Message()))
		}
	}
	for name, req := range map[string]*csi.NodeUnpublishVolumeRequest{
		"10 KB volume id":   {VolumeId: long, TargetPath: ce.target("pod-long")},
		"10 KB target path": {VolumeId: "pv-long", TargetPath: ce.target(strings.Repeat("d/", 5<<10))},
	} {
		if _, err := p.node().NodeUnpublishVolume(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("unpublish with a %s: %v, want InvalidArgument", name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ce.state, "state.json")); bytes.Contains(b, []byte(long[:200])) {
		t.Error("state.json holds the over-long input")
	}
	// Valid publishes still work.
	pod := ce.target("pod-ok")
	publish(t, p, ce.publishReq("pv-ok", llamaPath, pod))
	checkTree(t, readTree(t, pod), ce.wantTree(llamaPath))
	unpublish(t, p, "pv-ok", pod)
}
