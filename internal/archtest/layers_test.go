package archtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ringcache/ringcache/"

// maxPeerDeps bounds what the peer protocol pulls in (it was 1445 when it
// imported pkg/juice).
const maxPeerDeps = 500

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

var rowRE = regexp.MustCompile("^\\| *([0-9]+) *\\| *`([^`]+)` *\\|")

// layers reads the package map of docs/design.md.
func layers(t *testing.T, root string) map[string]int {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	begin, end := []byte("<!-- archtest:layers:begin -->"), []byte("<!-- archtest:layers:end -->")
	i, j := bytes.Index(doc, begin), bytes.Index(doc, end)
	if i < 0 || j < i {
		t.Fatal("docs/design.md has no archtest:layers table")
	}
	m := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(doc[i:j]))
	for sc.Scan() {
		g := rowRE.FindStringSubmatch(sc.Text())
		if g == nil {
			continue
		}
		n, _ := strconv.Atoi(g[1])
		if _, dup := m[g[2]]; dup {
			t.Errorf("docs/design.md lists %s twice", g[2])
		}
		m[g[2]] = n
	}
	if len(m) == 0 {
		t.Fatal("docs/design.md's package map is empty")
	}
	return m
}

// TestLayers: every package is in the design's map, imports only lower
// layers, and the map names no package that does not exist.
func TestLayers(t *testing.T) {
	root := moduleRoot(t)
	layer := layers(t, root)
	cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		seen[pkg] = true
		l, ok := layer[pkg]
		if !ok {
			t.Errorf("%s is not in docs/design.md's package map", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if dl, ok := layer[dep]; ok && dl >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only lower layers", pkg, l, dep, dl)
			}
		}
	}
	var stale []string
	for pkg := range layer {
		if !seen[pkg] {
			stale = append(stale, pkg)
		}
	}
	sort.Strings(stale)
	for _, pkg := range stale {
		t.Errorf("docs/design.md lists %s, which does not exist", pkg)
	}
}

// TestPeerDeps: the peer protocol stays free of JuiceFS.
func TestPeerDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./pkg/peer")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(deps) >= maxPeerDeps {
		t.Errorf("go list -deps ./pkg/peer: %d packages, want < %d", len(deps), maxPeerDeps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/juicedata/") || d == module+"pkg/juice" || d == module+"pkg/blockstore" {
			t.Errorf("pkg/peer depends on %s", d)
		}
	}
}
