package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// Node is one cachenode process.
type Node struct {
	Name, DataDir, LogPath         string
	PeerAddr, GossipAddr, HTTPAddr string
	Seeds                          []string
	Args                           []string // extra serve flags; they come last, so they override the defaults (e.g. another --gossip-key-file)
	e                              *Env
	cmd                            *exec.Cmd
	exited                         chan struct{}
	started                        bool // has been ready once: its addresses are fixed from then on
}

// errPortTaken: the node could not bind a port picked for it, because
// another process took it between the pick and the bind.
var errPortTaken = errors.New("a picked port was taken before the node bound it")

// NewNode prepares a node with free ports; Start runs it.
func (e *Env) NewNode(name string, seeds []string, args ...string) (*Node, error) {
	n := &Node{Name: name, e: e, Seeds: seeds, Args: args, DataDir: filepath.Join(e.Dir, name)}
	n.LogPath = n.DataDir + ".log"
	if err := n.pickPorts(); err != nil {
		return nil, err
	}
	e.onClose(n.Kill)
	return n, nil
}

func (n *Node) pickPorts() error {
	for _, a := range []*string{&n.PeerAddr, &n.GossipAddr, &n.HTTPAddr} {
		p, err := realtest.FreeTCPPort()
		if err != nil {
			return err
		}
		*a = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return nil
}

// StartNode prepares and starts a node.
func (e *Env) StartNode(name string, seeds []string, args ...string) (*Node, error) {
	n, err := e.NewNode(name, seeds, args...)
	if err != nil {
		return nil, err
	}
	return n, n.Start()
}

// Start runs the node and waits until it is ready. Free ports are picked
// before the process binds them, so another process (an outgoing
// connection's ephemeral port, say) can take one in between: a first start
// that fails for that reason is retried on new ports, up to three times. A
// node that has been ready once keeps its addresses.
func (n *Node) Start() error {
	for attempt := 1; ; attempt++ {
		err := n.start()
		if err == nil {
			n.started = true
			return nil
		}
		if n.started || attempt == 3 || !errors.Is(err, errPortTaken) {
			return err
		}
		if err := n.pickPorts(); err != nil {
			return err
		}
	}
}

func (n *Node) start() error {
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	args := append([]string{"serve",
		"--data-dir", n.DataDir, "--capacity", "4GiB", "--min-free", "64MiB",
		"--listen", n.PeerAddr, "--gossip-listen", n.GossipAddr, "--http-listen", n.HTTPAddr,
		"--seeds", strings.Join(n.Seeds, ","), "--token-file", n.e.TokenFile, "--gossip-key-file", n.e.GossipKeyFile,
		"--gossip-profile", "local", "--log-format", "text", "--node-id", n.Name}, n.Args...)
	n.cmd = exec.Command(filepath.Join(n.e.Bin, "cachenode"), args...)
	n.cmd.Env = append(os.Environ(), "RINGCACHE_VOLUME_MODELS="+n.e.MetaURL)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(n.cmd, n.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-n.exited:
			if b, err := os.ReadFile(n.LogPath); err == nil && int64(len(b)) > logStart && bytes.Contains(b[logStart:], []byte("address already in use")) {
				return fmt.Errorf("%s: %w:\n%s", n.Name, errPortTaken, n.LogTail(4000))
			}
			return fmt.Errorf("%s exited during start:\n%s", n.Name, n.LogTail(4000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60s", n.Name)
		}
		time.Sleep(50 * time.Millisecond) // polls the node's /readyz with a deadline
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Stop sends SIGTERM (a graceful stop: the node leaves the ring), waits
// for the process to exit and returns its exit code.
func (n *Node) Stop() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	<-n.exited
	return n.cmd.ProcessState.ExitCode()
}

// Pid is the node's process ID, or 0 when it is not running.
func (n *Node) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// LogTail returns the last max bytes of the node's log.
func (n *Node) LogTail(max int) string {
	b, _ := os.ReadFile(n.LogPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Client dials the node with the cluster token.
func (n *Node) Client() (*peer.Client, error) {
	return peer.Dial(n.PeerAddr, peer.ClientOptions{Token: []byte(Token), AcceptS2: true})
}

// WaitMembers waits until the node's ring has exactly want members and
// returns the placement it uses and how long it took. It gives up after
// timeout, or when ctx ends.
func (n *Node) WaitMembers(ctx context.Context, want int, timeout time.Duration) (*ring.Placement, time.Duration, error) {
	c, err := n.Client()
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	start := time.Now()
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(sctx)
		cancel()
		if err == nil && len(st.Members) == want {
			p, err := peer.StatusPlacement(st)
			return p, time.Since(start), err
		}
		if time.Since(start) > timeout {
			return nil, 0, fmt.Errorf("%s: ring has not %d members after %v (last: %v, err %v)", n.Name, want, timeout, st.GetMembers(), err)
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("%s: waiting for %d members: %w", n.Name, want, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond) // polls the node's Status with a deadline
	}
}

// StartNodes starts count nodes seeded from the first and waits until each
// sees all of them.
func (e *Env) StartNodes(ctx context.Context, count int, args ...string) ([]*Node, *ring.Placement, error) {
	var nodes []*Node
	var seeds []string
	for i := range count {
		n, err := e.StartNode(fmt.Sprintf("node-%d", i+1), seeds, args...)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			seeds = []string{n.GossipAddr}
		}
		nodes = append(nodes, n)
	}
	var p *ring.Placement
	for _, n := range nodes {
		var err error
		if p, _, err = n.WaitMembers(ctx, count, 30*time.Second); err != nil {
			return nil, nil, err
		}
	}
	return nodes, p, nil
}

// Metric sums a metric's samples whose label text contains match, from the
// node's /metrics.
func (n *Node) Metric(name, match string) (float64, error) {
	return scrapeMetric(n.HTTPAddr, name, match)
}
