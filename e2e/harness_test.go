package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/object"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/juice"
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

const testToken = "e2e-cluster-token-0123456789"

// env is one test's origin: Redis, MinIO, a counting proxy, and a volume.
type env struct {
	redis   *realtest.Redis
	minio   *realtest.MinIO
	proxy   *realtest.OriginProxy
	metaURL string
	format  *meta.Format
	direct  object.ObjectStorage // the volume's objects, straight from MinIO
	token   string               // path of the token file
	files   map[string][]byte    // what was written, by path
}

func newEnv(t *testing.T, fo juicetest.FormatOptions) *env {
	t.Helper()
	e := &env{redis: realtest.StartRedis(t), minio: realtest.StartMinIO(t)}
	e.proxy = realtest.StartOriginProxy(t, e.minio.Addr)
	e.metaURL = e.redis.NewDB(t)
	if fo.Name == "" {
		fo.Name = "models"
	}
	fo.MetaURL = e.metaURL
	fo.Bucket = "http://" + e.proxy.Addr + "/ringcache"
	fo.AccessKey, fo.SecretKey = e.minio.AccessKey, e.minio.SecretKey
	f, err := juicetest.Format(context.Background(), fo)
	if err != nil {
		t.Fatalf("format: %v", err)
	}
	e.format = f
	df := *f
	df.Bucket = "http://" + e.minio.Addr + "/ringcache"
	if e.direct, err = juice.OpenOrigin(&df); err != nil {
		t.Fatal(err)
	}
	e.token = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(e.token, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.files = map[string][]byte{}
	return e
}

// write writes files into the volume with a separate read-write client.
func (e *env) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	w, err := juicetest.OpenWriter(context.Background(), e.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for p, b := range files {
		if err := w.WriteFile(p, b); err != nil {
			t.Fatal(err)
		}
		e.files[p] = b
	}
}

// blocks lists the volume's data block keys with their bytes as stored.
func (e *env) blocks(t *testing.T) map[string][]byte {
	t.Helper()
	objs, err := object.ListAll(e.direct, "chunks/", "", true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for o := range objs {
		if o == nil || o.IsDir() {
			continue
		}
		rc, err := e.direct.Get(o.Key(), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[o.Key()] = b
	}
	if len(out) == 0 {
		t.Fatal("volume has no blocks")
	}
	return out
}

// originGets is the number of origin GETs of the volume's block key.
func (e *env) originGets(key string) int {
	return e.proxy.Gets()[e.format.Name+"/"+key]
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// cacheNode is one cachenode process.
type cacheNode struct {
	t                              *testing.T
	name, dataDir                  string
	peerAddr, gossipAddr, httpAddr string
	seeds                          []string
	e                              *env
	cmd                            *exec.Cmd
	logPath                        string
	exited                         chan struct{}
}

func (e *env) startNode(t *testing.T, name string, seeds []string) *cacheNode {
	t.Helper()
	n := &cacheNode{
		t: t, name: name, e: e, seeds: seeds,
		dataDir:    filepath.Join(t.TempDir(), name),
		peerAddr:   fmt.Sprintf("127.0.0.1:%d", realtest.FreePort(t)),
		gossipAddr: fmt.Sprintf("127.0.0.1:%d", realtest.FreePort(t)),
		httpAddr:   fmt.Sprintf("127.0.0.1:%d", realtest.FreePort(t)),
	}
	n.logPath = n.dataDir + ".log"
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			b, _ := os.ReadFile(n.logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log ---\n%s", n.name, b)
		}
	})
	return n
}

func (n *cacheNode) start() {
	t := n.t
	t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command(filepath.Join(binDir, "cachenode"), "serve",
		"--data-dir", n.dataDir, "--capacity", "1GiB", "--min-free", "64MiB",
		"--listen", n.peerAddr, "--gossip-listen", n.gossipAddr, "--http-listen", n.httpAddr,
		"--seeds", strings.Join(n.seeds, ","), "--token-file", n.e.token,
		"--gossip-profile", "local", "--log-format", "text", "--node-id", n.name)
	n.cmd.Env = append(os.Environ(), "RINGCACHE_VOLUME_MODELS="+n.e.metaURL)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(n.cmd, n.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.exited:
			b, _ := os.ReadFile(n.logPath)
			t.Fatalf("%s exited during start:\n%s", n.name, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s", n.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to exit.
func (n *cacheNode) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

func (n *cacheNode) client(t *testing.T) *peer.Client {
	t.Helper()
	c, err := peer.Dial(n.peerAddr, peer.ClientOptions{Token: []byte(testToken), AcceptS2: true})
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
	c := n.client(t)
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil && len(st.Members) == want {
			var ms []ring.Member
			for _, m := range st.Members {
				ms = append(ms, ring.Member{ID: m.Id, Addr: m.Addr, Weight: int(m.Weight), PlacementVersion: int(m.PlacementVersion)})
			}
			p, err := ring.NewPlacement(ring.Config{PartitionCount: int(st.PartitionCount), Load: st.Load}, ms)
			if err != nil {
				t.Fatal(err)
			}
			return p, time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: ring has not %d members after %v (last: %v, err %v)", n.name, want, timeout, st.GetMembers(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
