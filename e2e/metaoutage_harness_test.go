package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/realtest"
)

// durableRedis is a redis-server that keeps its data across restarts on
// the same port (an append-only file fsynced on every write), optionally
// a replica of another.
type durableRedis struct {
	t         *testing.T
	bin, cli  string
	dir, Addr string
	replicaOf string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startDurableRedis(t *testing.T, name, replicaOf string) *durableRedis {
	t.Helper()
	bin, err := realtest.FindBinary("RINGCACHE_REDIS_SERVER", "redis-server")
	if err != nil {
		realtest.Missing(t, "%v", err)
	}
	cli, err := realtest.FindBinary("RINGCACHE_REDIS_CLI", "redis-cli")
	if err != nil {
		realtest.Missing(t, "%v", err)
	}
	r := &durableRedis{t: t, bin: bin, cli: cli, dir: filepath.Join(t.TempDir(), name), replicaOf: replicaOf}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Addr = fmt.Sprintf("127.0.0.1:%d", realtest.FreePort(t))
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Logf("--- redis %s log ---\n%s", name, clip(b, 4000))
		}
	})
	r.start()
	return r
}

// start runs the server on its port with its data directory and waits
// until it answers PING (after loading its append-only file).
func (r *durableRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{"--bind", "127.0.0.1", "--port", port, "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--databases", "16",
		"--logfile", "redis.log"}
	if r.replicaOf != "" {
		h, p, _ := net.SplitHostPort(r.replicaOf)
		args = append(args, "--replicaof", h, p)
	}
	r.cmd = exec.Command(r.bin, args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(r.cmd, r.exited)
	r.waitFor("PONG", 20*time.Second, "PING")
}

// kill sends SIGKILL (no shutdown save) and waits for the exit.
func (r *durableRedis) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// do runs one command with redis-cli and returns its output.
func (r *durableRedis) do(args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(r.Addr)
	out, err := exec.Command(r.cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitFor polls a command until its output contains want.
func (r *durableRedis) waitFor(want string, timeout time.Duration, args ...string) string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := r.do(args...)
		if err == nil && strings.Contains(out, want) {
			return out
		}
		select {
		case <-r.exited:
			r.t.Fatalf("redis %s exited", r.Addr)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis %s: %v never answered %q after %v (last %q, %v)", r.Addr, args, want, timeout, out, err)
		}
		time.Sleep(50 * time.Millisecond) // polls redis-server with a deadline
	}
}

// tcpProxy forwards connections to a target that can be moved: moving it
// cuts the forwarded connections, as a failover of a service address does.
type tcpProxy struct {
	Addr string
	l    net.Listener

	mu     sync.Mutex
	target string
	conns  map[net.Conn]bool
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{Addr: l.Addr().String(), l: l, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		up, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// moveTo sends new connections to target and cuts the current ones.
func (p *tcpProxy) moveTo(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.cut()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
