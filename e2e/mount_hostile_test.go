package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/juicetest"
)

// jfsMetricsLine is JuiceFS's log line naming its metrics listener.
var jfsMetricsLine = regexp.MustCompile(`Prometheus metrics listening on ([0-9.]+:[0-9]+)`)

// TestMountServesNoPprof lists every TCP port the processes of a real
// mount listen on (its JuiceFS supervisor and the FUSE server it starts)
// and asks each for /debug/pprof/: none answers 200 by default. With
// --debug-pprof the mount's own metrics address does, and only it.
func TestMountServesNoPprof(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	data := randomBytes(t, 1<<20)
	e.write(t, map[string][]byte{"/models/m/a.bin": data})
	n := e.startNode(t, "node-1", nil)
	n.waitMembers(t, 1, 30*time.Second)

	for _, tc := range []struct {
		name  string
		extra []string
		optIn bool
	}{{"default", nil, false}, {"debug-pprof", []string{"--debug-pprof"}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := e.mount(t, mountOpts{node: n, subdir: "/models/m", extra: tc.extra})
			b, err := os.ReadFile(filepath.Join(m.dir, "a.bin"))
			if err != nil || sha(b) != sha(data) {
				t.Fatalf("read through the mount: %v", err)
			}
			// Wait until both metrics listeners are up (JuiceFS starts its
			// own after the FUSE mount): then every listener is.
			var addrs []string
			pollUntil(t, "both metrics listeners of the mount are up", 60*time.Second, func() error {
				jfs := jfsMetricsLine.FindStringSubmatch(m.LogTail(1 << 20))
				addrs, err = tcpListenersOf(processTree(m.Pid()))
				if err != nil {
					t.Fatal(err)
				}
				if jfs != nil && slices.Contains(addrs, jfs[1]) && slices.Contains(addrs, m.MetricsAddr) {
					return nil
				}
				return fmt.Errorf("listening on %v; JuiceFS log line %v", addrs, jfs)
			})
			slices.Sort(addrs)
			t.Logf("mount processes %v listen on %v", processTree(m.Pid()), addrs)
			hc := &http.Client{Timeout: 5 * time.Second}
			var answered []string
			for _, a := range addrs {
				resp, err := hc.Get("http://" + a + "/debug/pprof/")
				if err != nil {
					t.Logf("%s: %v", a, err)
					continue
				}
				resp.Body.Close()
				t.Logf("%s: GET /debug/pprof/ -> %d", a, resp.StatusCode)
				if resp.StatusCode == http.StatusOK {
					answered = append(answered, a)
				}
			}
			want := []string(nil)
			if tc.optIn {
				want = []string{m.MetricsAddr}
			}
			if !slices.Equal(answered, want) {
				t.Errorf("ports answering /debug/pprof/ with 200: %v, want %v", answered, want)
			}
			log := m.LogTail(1 << 20)
			// JuiceFS's debug agent (127.0.0.1:6060-6099) never runs.
			if strings.Contains(log, "Debug agent listening") {
				t.Error("JuiceFS's debug agent started")
			}
			// No option is passed that JuiceFS silently turns off
			// (docs/mount.md: prefetch needs a local cache).
			if strings.Contains(log, "prefetch will be disabled") {
				t.Error("the mount passed --prefetch without a local cache: JuiceFS disabled it")
			}
		})
	}
}

// TestMountSubdirSymlinkRefused: a --subdir through a symlink is refused
// at once with a message naming the symlink, not after JuiceFS's retries
// with "not a directory"; the directory it points to mounts.
func TestMountSubdirSymlinkRefused(t *testing.T) {
	requireFUSE(t)
	e := newEnv(t, juicetest.FormatOptions{})
	data := randomBytes(t, 64<<10)
	e.write(t, map[string][]byte{"/models/m/v2/model.safetensors": data})
	w, err := juicetest.OpenWriter(context.Background(), e.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("v2", "/models/m/latest"); err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("m", "/models/alias"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n := e.startNode(t, "node-1", nil)
	n.waitMembers(t, 1, 30*time.Second)

	for _, tc := range []struct{ subdir, link string }{
		{"/models/m/latest", "/models/m/latest"},  // the last component
		{"/models/alias/v2", "/models/alias"},     // a component on the way
		{"/models/alias/latest", "/models/alias"}, // both
		{"/models/m/latest/", "/models/m/latest"}, // trailing slash
		{"models/alias/v2/", "/models/alias"},     // relative spelling
	} {
		e.mounts++
		start := time.Now()
		_, err := e.c.Mount("refused-"+strings.ReplaceAll(tc.subdir, "/", "_"), cluster.MountOptions{Node: n.Node, Subdir: tc.subdir})
		took := time.Since(start)
		if err == nil {
			t.Errorf("--subdir %s mounted; want a refusal", tc.subdir)
			continue
		}
		msg := err.Error()
		t.Logf("--subdir %s refused after %v", tc.subdir, took.Round(time.Millisecond))
		if !strings.Contains(msg, "symlink") || !strings.Contains(msg, tc.link) {
			t.Errorf("--subdir %s: error does not name the symlink %s:\n%s", tc.subdir, tc.link, msg)
		}
		if strings.Contains(msg, "not a directory") {
			t.Errorf("--subdir %s: JuiceFS tried the path (\"not a directory\"):\n%s", tc.subdir, msg)
		}
	}
	// A missing directory is refused as clearly.
	if _, err := e.c.Mount("refused-missing", cluster.MountOptions{Node: n.Node, Subdir: "/models/nope"}); err == nil ||
		!strings.Contains(err.Error(), "/models/nope") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("--subdir of a missing directory: %v", err)
	}
	// The target itself mounts.
	m := e.mount(t, mountOpts{node: n, subdir: "/models/m/v2"})
	b, err := os.ReadFile(filepath.Join(m.dir, "model.safetensors"))
	if err != nil || sha(b) != sha(data) {
		t.Fatalf("read the symlink's target: %v", err)
	}
}
