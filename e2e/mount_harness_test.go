package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/realtest"
)

func errorsIsMissing(err error) bool { return errors.Is(err, realtest.ErrMissing) }

// mount is one `csi mount` process: a read-only JuiceFS client.
type mount struct {
	*cluster.Mount
	dir string
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
	e.mounts++
	co := cluster.MountOptions{Subdir: o.subdir, Direct: o.direct, Args: o.extra}
	if o.node != nil {
		co.Node = o.node.Node
	}
	m, err := e.c.Mount(fmt.Sprintf("mount-%d", e.mounts), co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Unmount()
		if t.Failed() {
			t.Logf("--- mount %s log ---\n%s", m.Dir, m.LogTail(8000))
		}
	})
	return &mount{Mount: m, dir: m.Dir}
}

// metric sums a counter's samples whose label text contains match.
func (m *mount) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	v, err := m.Metric(name, match)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readFileSHA reads path to the end and returns its sha256.
func readFileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkFileSHA reads a whole file and checks its sha256.
func checkFileSHA(path string, want []byte) error {
	got, err := readFileSHA(path)
	if err != nil {
		return err
	}
	if got != sha(want) {
		return fmt.Errorf("%s: sha256 %s, want %s", path, got, sha(want))
	}
	return nil
}

// readTree reads every file under dir and returns their sha256 by path
// relative to dir. JuiceFS's internal files in the root are skipped.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Dir(p) == dir && cluster.JuiceFSInternal[d.Name()] {
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
