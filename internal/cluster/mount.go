package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/internal/realtest"
)

// MountOptions describes a `csi mount` process. It has no defaults.
type MountOptions struct {
	Node   *Node  // the mount's local cache node; required unless Direct
	Subdir string // mount only this directory; "" mounts the volume's root
	Direct bool   // a plain JuiceFS client reading the origin, no ring
	Args   []string
}

// Validate reports a ring mount without a node.
func (o *MountOptions) Validate() error {
	if o.Node == nil && !o.Direct {
		return fmt.Errorf("cluster: invalid mount options: %w", errors.New("a ring mount needs a node"))
	}
	return nil
}

// Mount is one read-only JuiceFS mount process.
type Mount struct {
	Dir, LogPath, MetricsAddr string
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

// Mount starts a mount and waits until its mount point is a FUSE mount.
func (e *Env) Mount(name string, o MountOptions) (*Mount, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	base := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(filepath.Join(base, "mnt"), 0o755); err != nil {
		return nil, err
	}
	m := &Mount{Dir: filepath.Join(base, "mnt"), LogPath: filepath.Join(base, "mount.log")}
	urlFile := filepath.Join(base, "meta-url")
	if err := os.WriteFile(urlFile, []byte(e.MetaURL), 0o600); err != nil {
		return nil, err
	}
	port, err := realtest.FreeTCPPort()
	if err != nil {
		return nil, err
	}
	m.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"mount", "--meta-url-file", urlFile, "--token-file", e.TokenFile,
		"--metrics-listen", m.MetricsAddr, "--log-level", "debug"}
	if o.Direct {
		args = append(args, "--direct")
	} else {
		args = append(args, "--node", o.Node.PeerAddr)
	}
	if o.Subdir != "" {
		args = append(args, "--subdir", o.Subdir)
	}
	args = append(append(args, o.Args...), m.Dir)
	logf, err := os.Create(m.LogPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	m.cmd = exec.Command(filepath.Join(e.Bin, "csi"), args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	m.exited = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.exited) }()
	e.onClose(m.Unmount)
	deadline := time.Now().Add(60 * time.Second)
	for !IsFUSEMount(m.Dir) {
		select {
		case <-m.exited:
			return nil, fmt.Errorf("mount exited before mounting:\n%s", m.LogTail(4000))
		default:
		}
		if time.Now().After(deadline) {
			m.Unmount()
			return nil, fmt.Errorf("%s not mounted after 60s", m.Dir)
		}
		time.Sleep(50 * time.Millisecond) // polls the mount table with a deadline
	}
	return m, nil
}

// Unmount unmounts lazily and waits for the mount process to exit; one
// that has not exited 10 s later is killed.
func (m *Mount) Unmount() {
	if IsFUSEMount(m.Dir) {
		exec.Command("fusermount3", "-u", "-z", m.Dir).Run()
	}
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second): // a fixed safety bound in a shutdown path: real time
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	}
}

// Pid is the mount process's id: JuiceFS's supervisor, whose child (same
// binary, JFS_SUPERVISOR set) serves the FUSE requests.
func (m *Mount) Pid() int { return m.cmd.Process.Pid }

// Exited is closed when the mount process has exited.
func (m *Mount) Exited() <-chan struct{} { return m.exited }

// LogTail returns the last max bytes of the mount's log.
func (m *Mount) LogTail(max int) string {
	b, _ := os.ReadFile(m.LogPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Metric sums a metric's samples whose label text contains match, from the
// mount's ring metrics.
func (m *Mount) Metric(name, match string) (float64, error) {
	return scrapeMetric(m.MetricsAddr, name, match)
}

// IsFUSEMount reports whether dir is a FUSE mount point.
func IsFUSEMount(dir string) bool {
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

// JuiceFSInternal are the virtual files a JuiceFS mount shows in its root;
// .accesslog blocks its readers by design, so tree walks skip them.
var JuiceFSInternal = map[string]bool{".accesslog": true, ".stats": true, ".config": true, ".trash": true, ".control": true}
