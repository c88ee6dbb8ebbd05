package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/realtest"
)

// mount is one `csi mount` process: a read-only JuiceFS client.
type mount struct {
	dir, logPath, metricsAddr string
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

type mountOpts struct {
	node   *cacheNode // local cache node; nil with direct
	subdir string
	direct bool
	extra  []string
}

func requireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		realtest.Missing(t, "no /dev/fuse: %v", err)
	}
	if os.Geteuid() != 0 {
		realtest.Missing(t, "FUSE mounts need root")
	}
}

func (e *env) mount(t *testing.T, o mountOpts) *mount {
	t.Helper()
	requireFUSE(t)
	base := t.TempDir()
	m := &mount{dir: filepath.Join(base, "mnt"), logPath: filepath.Join(base, "mount.log")}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	urlFile := filepath.Join(base, "meta-url")
	if err := os.WriteFile(urlFile, []byte(e.metaURL), 0o600); err != nil {
		t.Fatal(err)
	}
	m.metricsAddr = fmt.Sprintf("127.0.0.1:%d", realtest.FreePort(t))
	args := []string{"mount", "--meta-url-file", urlFile, "--token-file", e.token,
		"--metrics-listen", m.metricsAddr, "--log-level", "debug"}
	if o.direct {
		args = append(args, "--direct")
	} else {
		args = append(args, "--node", o.node.peerAddr)
	}
	if o.subdir != "" {
		args = append(args, "--subdir", o.subdir)
	}
	args = append(append(args, o.extra...), m.dir)
	logf, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd = exec.Command(filepath.Join(binDir, "csi"), args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() {
		m.unmount()
		if t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- mount %s log ---\n%s", m.dir, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !isFUSEMount(m.dir) {
		select {
		case <-m.exited:
			b, _ := os.ReadFile(m.logPath)
			t.Fatalf("mount exited before mounting:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 60s", m.dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m
}

func (m *mount) unmount() {
	if isFUSEMount(m.dir) {
		exec.Command("fusermount3", "-u", "-z", m.dir).Run()
	}
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	}
}

// isFUSEMount reports whether dir is a FUSE mount point.
func isFUSEMount(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[4] != dir {
			continue
		}
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && strings.HasPrefix(fields[i+1], "fuse") {
				return true
			}
		}
	}
	return false
}

// metric returns the sum of a counter's samples whose label text contains
// match, from the mount's ring metrics.
func (m *mount) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + m.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// juicefsInternal are the virtual files a JuiceFS mount shows in its root
// (.accesslog blocks readers until the next access, by design).
var juicefsInternal = map[string]bool{".accesslog": true, ".stats": true, ".config": true, ".trash": true, ".control": true}

// readTree reads every file under dir and returns their sha256 by path
// relative to dir. JuiceFS's internal files in the root are skipped.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Dir(p) == dir && juicefsInternal[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		out["/"+rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantTree is the sha256 of every written file under prefix, keyed by path
// relative to prefix.
func (e *env) wantTree(prefix string) map[string]string {
	out := map[string]string{}
	for p, b := range e.files {
		if rel, ok := strings.CutPrefix(p, prefix); ok {
			out[rel] = sha(b)
		}
	}
	return out
}

func checkTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("mount shows %d files, want %d", len(got), len(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: sha256 %s, want %s", p, got[p], w)
		}
	}
}
