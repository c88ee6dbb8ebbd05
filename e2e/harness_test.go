package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// binDir holds the binaries built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ringcache-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir, "../cmd/cachenode", "../cmd/csi")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testToken = cluster.Token

// env is one test's deployment: Redis, MinIO, a counting proxy, a volume,
// and the nodes and mounts the test starts (internal/cluster).
type env struct {
	c       *cluster.Env
	redis   *realtest.Redis
	minio   *realtest.MinIO
	proxy   *realtest.OriginProxy
	metaURL string
	format  *meta.Format
	direct  object.ObjectStorage // the volume's objects, straight from MinIO
	token   string               // path of the token file
	files   map[string][]byte    // what was written, by path
	t       *testing.T
	mounts  int
}

func newEnv(t *testing.T, fo juicetest.FormatOptions) *env {
	t.Helper()
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: t.TempDir(), Bin: binDir, Volume: fo})
	if err != nil {
		if errorsIsMissing(err) {
			realtest.Missing(t, "%v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{c: c, redis: c.Redis, minio: c.MinIO, proxy: c.Proxy, metaURL: c.MetaURL,
		format: c.Format, direct: c.Direct, token: c.TokenFile, files: map[string][]byte{}, t: t}
}

// write writes files into the volume with a separate read-write client.
func (e *env) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	if err := e.c.Write(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		e.files[p] = b
	}
}

// blocks lists the volume's data block keys with their bytes as stored.
func (e *env) blocks(t *testing.T) map[string][]byte {
	t.Helper()
	b, err := e.c.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatal("volume has no blocks")
	}
	return b
}

// originGets is the number of origin GETs of the volume's block key.
func (e *env) originGets(key string) int { return e.c.OriginGets(key) }

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// cacheNode is one cachenode process.
type cacheNode struct {
	*cluster.Node
	t                              *testing.T
	name, dataDir                  string
	peerAddr, gossipAddr, httpAddr string
}

func (e *env) startNode(t *testing.T, name string, seeds []string, args ...string) *cacheNode {
	t.Helper()
	n, err := e.c.NewNode(name, seeds, args...)
	if err != nil {
		t.Fatal(err)
	}
	cn := &cacheNode{Node: n, t: t, name: name, dataDir: n.DataDir, peerAddr: n.PeerAddr, gossipAddr: n.GossipAddr, httpAddr: n.HTTPAddr}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, n.LogTail(6000))
		}
	})
	cn.start()
	// A first start may have moved to other ports (cluster.Node.Start).
	cn.peerAddr, cn.gossipAddr, cn.httpAddr = n.PeerAddr, n.GossipAddr, n.HTTPAddr
	return cn
}

func (n *cacheNode) start() {
	n.t.Helper()
	if err := n.Start(); err != nil {
		n.t.Fatal(err)
	}
}

// kill sends SIGKILL and waits for the process to exit.
func (n *cacheNode) kill() { n.Kill() }

func (n *cacheNode) client(t *testing.T) *peer.Client {
	t.Helper()
	c, err := n.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitMembers waits until the node's ring has exactly want members and
// returns its placement.
func (n *cacheNode) waitMembers(t *testing.T, want int, timeout time.Duration) (*ring.Placement, time.Duration) {
	t.Helper()
	p, took, err := n.WaitMembers(context.Background(), want, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return p, took
}

// metric sums the node's samples of a metric whose labels contain match.
func (n *cacheNode) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	v, err := n.Metric(name, match)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
