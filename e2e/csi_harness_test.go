package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// csiProc is a `csi node` or `csi controller` process serving on a unix
// socket.
type csiProc struct {
	t       *testing.T
	name    string
	bin     string // the csi binary; "" means binDir/csi
	args    []string
	sock    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *grpc.ClientConn
}

// startCSIProc runs `csi <args> --endpoint unix://sock` and waits until its
// Probe answers ready.
func startCSIProc(t *testing.T, name, sock string, args ...string) *csiProc {
	t.Helper()
	p := &csiProc{t: t, name: name, sock: sock, logPath: sock + ".log",
		args: append(append([]string{}, args...), "--endpoint", "unix://"+sock, "--log-format", "text", "--log-level", "debug")}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if p.conn != nil {
			p.conn.Close()
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > 12000 {
				b = b[len(b)-12000:]
			}
			t.Logf("--- %s log ---\n%s", p.name, b)
		}
	})
	return p
}

func (p *csiProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	bin := p.bin
	if bin == "" {
		bin = filepath.Join(binDir, "csi")
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.exited)
	if p.conn == nil {
		conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			p.t.Fatal(err)
		}
		p.conn = conn
	}
	id := csi.NewIdentityClient(p.conn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := id.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil && r.GetReady().GetValue() {
			return
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("%s exited during start:\n%s", p.name, b)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after 90s (last: %v, %v)", p.name, r, err)
		}
		time.Sleep(100 * time.Millisecond) // polls the plugin's Probe with a deadline
	}
}

// kill sends SIGKILL to the plugin process only (not its mount processes,
// which run in their own sessions) and waits for it.
func (p *csiProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// logTime returns the time of the first line of the plugin's log that
// holds every one of parts (the slog text format's time= field).
func (p *csiProc) logTime(t *testing.T, parts ...string) (time.Time, bool) {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
lines:
	for _, l := range strings.Split(string(b), "\n") {
		for _, part := range parts {
			if !strings.Contains(l, part) {
				continue lines
			}
		}
		f, _, _ := strings.Cut(l, " ")
		v, ok := strings.CutPrefix(f, "time=")
		if !ok {
			t.Fatalf("%s log line without a time: %q", p.name, l)
		}
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("%s log line with a bad time: %q: %v", p.name, l, err)
		}
		return at, true
	}
	return time.Time{}, false
}

func (p *csiProc) node() csi.NodeClient             { return csi.NewNodeClient(p.conn) }
func (p *csiProc) controller() csi.ControllerClient { return csi.NewControllerClient(p.conn) }

// mountLine is one line of /proc/self/mountinfo.
type mountLine struct {
	dev, root, point, opts, fstype string
}

// mountsUnder lists the mounts whose mount point is under dir.
func mountsUnder(t *testing.T, dir string) []mountLine {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mountLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		ml := mountLine{dev: fl[2], root: fl[3], point: fl[4], opts: fl[5]}
		for i, x := range fl {
			if x == "-" && i+1 < len(fl) {
				ml.fstype = fl[i+1]
			}
		}
		if ml.point == dir || strings.HasPrefix(ml.point, dir+"/") {
			out = append(out, ml)
		}
	}
	return out
}

// fuseSuperblocks counts the distinct FUSE file systems mounted under dir:
// a bind mount shows the device of the mount it was made from.
func fuseSuperblocks(t *testing.T, dir string) (devices map[string]int, lines []mountLine) {
	t.Helper()
	devices = map[string]int{}
	for _, ml := range mountsUnder(t, dir) {
		if strings.HasPrefix(ml.fstype, "fuse") {
			devices[ml.dev]++
			lines = append(lines, ml)
		}
	}
	return devices, lines
}

// waitFUSEAtMost waits until at most n FUSE file systems are mounted under
// dir (an idle shared mount removed, a refused publish cleaned up).
func waitFUSEAtMost(t *testing.T, dir string, n int, timeout time.Duration) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("at most %d FUSE file systems under %s", n, dir), timeout, func() error {
		if devs, lines := fuseSuperblocks(t, dir); len(devs) > n {
			return fmt.Errorf("%d mounted: %+v", len(devs), lines)
		}
		return nil
	})
}

// waitTargetBroken waits until reading target fails as a FUSE mount whose
// server died does (ENOTCONN or ECONNABORTED), after a test killed the
// mount processes.
func waitTargetBroken(t *testing.T, target string, timeout time.Duration) {
	t.Helper()
	pollUntil(t, "the target breaks once its mount processes are killed", timeout, func() error {
		_, err := os.ReadDir(target)
		if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
			t.Logf("target after the kill: %v", err)
			return nil
		}
		return fmt.Errorf("reading %s still gives %v", target, err)
	})
}

// cleanupMounts detaches every mount under dir and kills every process
// whose command line names dir: what a test's plugin and mounts left.
func cleanupMounts(t *testing.T, dir string) {
	t.Cleanup(func() {
		killProcsNaming(dir)
		ms := mountsUnder(t, dir)
		sort.Slice(ms, func(i, j int) bool { return len(ms[i].point) > len(ms[j].point) })
		for _, m := range ms {
			unix.Unmount(m.point, unix.MNT_DETACH)
		}
	})
}

// killProcsNaming SIGKILLs the processes whose command line names dir (or
// a path under it) and returns their PIDs.
func killProcsNaming(dir string) []int {
	pids := procsNaming(dir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return pids
}

func procsNaming(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		// JuiceFS rewrites its process title to the arguments joined by
		// spaces.
		for _, arg := range strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 || r == ' ' }) {
			if arg == dir || strings.HasPrefix(arg, dir+"/") {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// roCapability is a mount capability with a read-only access mode.
func roCapability() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
}

// publishReq is a NodePublishVolume request for a model of the test
// volume "models".
func (e *env) publishReq(id, path, target string) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId: id, TargetPath: target, VolumeCapability: roCapability(),
		VolumeContext: map[string]string{"volume": e.format.Name, "path": path},
		Secrets:       map[string]string{"metaurl": e.metaURL},
	}
}
