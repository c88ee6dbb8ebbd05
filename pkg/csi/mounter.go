package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
	"golang.org/x/sys/unix"
	mountutils "k8s.io/mount-utils"
)

// MountHealth is the state of a mount point: a shared JuiceFS (FUSE) mount
// or a bind mount of a model into a target.
type MountHealth int

const (
	// MountMissing: nothing is mounted there.
	MountMissing MountHealth = iota
	// MountHealthy: a FUSE mount that answers.
	MountHealthy
	// MountBroken: mounted but dead ("transport endpoint is not
	// connected": its FUSE server is gone), or not a FUSE mount.
	MountBroken
	// MountUnresponsive: a FUSE mount that did not answer a stat in time;
	// slow, not known dead, so it is not repaired.
	MountUnresponsive
)

func (h MountHealth) String() string {
	switch h {
	case MountMissing:
		return "missing"
	case MountHealthy:
		return "healthy"
	case MountBroken:
		return "broken"
	case MountUnresponsive:
		return "unresponsive"
	}
	return "unknown"
}

// Proc is a mount process: its PID and its start time (field 22 of
// /proc/PID/stat, clock ticks since boot), which tells it from a later
// process with the same PID. Start 0 is unknown.
type Proc struct {
	PID   int
	Start uint64
}

// MountSpec is a mount process to start.
type MountSpec struct {
	Dir     string   // the mount point; must exist
	Argv    []string // the command, launcher prefix included
	Env     []string // its environment
	LogFile string   // its stdout and stderr, appended
	// Secrets are removed from anything of the log quoted in errors.
	Secrets []string
}

// BindFlags are the per-mount flags of a target's bind mount, beyond the
// read-only, nosuid and nodev it always has.
type BindFlags struct {
	NoExec bool
}

// Mounter does a node's mount work. SystemMounter is the real one; tests
// use a fake.
type Mounter interface {
	// StartFUSE starts spec.Argv detached from the caller (its own
	// session, so it survives the caller) and waits until spec.Dir is a
	// FUSE mount that answers, the process exits, or ctx ends; on failure
	// it stops what it started. It returns the process.
	StartFUSE(ctx context.Context, spec MountSpec) (Proc, error)
	// StopFUSE unmounts the FUSE mount at dir (lazily when it is dead or
	// busy) and makes sure the mount process p (PID 0: unknown) and the
	// processes of its session that serve dir have exited.
	StopFUSE(dir string, p Proc) error
	// Health reports the state of the mount at dir.
	Health(dir string) MountHealth
	// MountedAt returns the topmost mount at dir, if any.
	MountedAt(dir string) (mountutils.MountInfo, bool, error)
	// Bind mounts the directory rel (relative to root, resolved without
	// symlinks and without leaving root or its mount) read-only, nosuid
	// and nodev at target, which must exist.
	Bind(root, rel, target string, flags BindFlags) error
	// Unmount unmounts target, lazily when its source is dead. Nothing
	// mounted is not an error.
	Unmount(target string) error
	// ProcessAlive reports whether a process serves dir for the mount
	// process p: p itself (the same start time), or a process of its
	// session (the JuiceFS server the supervisor forked), whose command
	// line names dir or a file in dir's parent.
	ProcessAlive(p Proc, dir string) bool
}

// SystemMounter is the Mounter of a real node: processes, mount(2),
// umount(2), openat2(2) and /proc/self/mountinfo.
type SystemMounter struct {
	// StatTimeout bounds the stat that checks whether a FUSE mount
	// answers. Default DefaultStatTimeout.
	StatTimeout time.Duration
	// StopTimeout is how long StopFUSE waits for a mount process to exit
	// after its unmount before killing it. Default DefaultStopTimeout.
	StopTimeout time.Duration
	// Clock times the stat timeout, the stop timeout and the polling of
	// a starting or stopping mount. Default clock.Real().
	Clock clock.Clock

	mu       sync.Mutex
	children map[int]chan struct{} // processes this mounter started, closed when reaped
}

var _ Mounter = (*SystemMounter)(nil)

// Defaults of SystemMounter's fields.
const (
	DefaultStatTimeout = 5 * time.Second
	DefaultStopTimeout = 10 * time.Second
)

// pollInterval is how often a starting mount is checked for serving and a
// stopping mount process for its exit.
const pollInterval = 50 * time.Millisecond

func (m *SystemMounter) statTimeout() time.Duration {
	if m.StatTimeout > 0 {
		return m.StatTimeout
	}
	return DefaultStatTimeout
}

func (m *SystemMounter) stopTimeout() time.Duration {
	if m.StopTimeout > 0 {
		return m.StopTimeout
	}
	return DefaultStopTimeout
}

func (m *SystemMounter) clock() clock.Clock { return clock.Or(m.Clock) }

// StartFUSE implements Mounter.
func (m *SystemMounter) StartFUSE(ctx context.Context, spec MountSpec) (Proc, error) {
	if len(spec.Argv) == 0 {
		return Proc{}, errors.New("start mount: empty command")
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return Proc{}, fmt.Errorf("start mount: %w", err)
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session and process group: no signal meant for the plugin
	// (or its process group) reaches it, and it outlives the plugin.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return Proc{}, fmt.Errorf("start mount: %w", err)
	}
	pid := cmd.Process.Pid
	// Not reaped before the goroutine below, so the PID is still ours.
	proc := Proc{PID: pid}
	if st, ok := procStat(pid); ok {
		proc.Start = st.start
	}
	exited := make(chan struct{})
	m.mu.Lock()
	if m.children == nil {
		m.children = map[int]chan struct{}{}
	}
	m.children[pid] = exited
	m.mu.Unlock()
	go func() {
		cmd.Wait() // reap it; the exit status is in its log
		close(exited)
		m.mu.Lock()
		delete(m.children, pid)
		m.mu.Unlock()
	}()
	tick := m.clock().NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if m.Health(spec.Dir) == MountHealthy {
			return proc, nil
		}
		select {
		case <-exited:
			m.detach(spec.Dir)
			return Proc{}, fmt.Errorf("mount process exited before mounting %s; its log %s ends: %s", spec.Dir, spec.LogFile, logTail(spec.LogFile, 600, spec.Secrets))
		case <-ctx.Done():
			m.kill(proc, spec.Dir)
			m.detach(spec.Dir)
			return Proc{}, fmt.Errorf("%s not mounted: %w (log %s)", spec.Dir, ctx.Err(), spec.LogFile)
		case <-tick.C():
		}
	}
}

// logTail returns the end of a log file with secrets removed.
func logTail(path string, max int, secrets []string) string {
	b, _ := os.ReadFile(path)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return scrub(errors.New(strings.TrimSpace(string(b))), secrets...)
}

// StopFUSE implements Mounter.
func (m *SystemMounter) StopFUSE(dir string, p Proc) error {
	var err error
	if _, ok, _ := m.MountedAt(dir); ok {
		if m.Health(dir) == MountHealthy {
			err = unix.Unmount(dir, 0)
		}
		if err != nil || m.Health(dir) != MountHealthy {
			err = m.detach(dir)
		}
	}
	if p.PID > 0 {
		exited := m.exitedChan(p.PID)
		clk := m.clock()
		deadline := clk.NewTimer(m.stopTimeout())
		defer deadline.Stop()
		tick := clk.NewTicker(pollInterval)
		defer tick.Stop()
	wait:
		for m.ProcessAlive(p, dir) {
			select {
			case <-exited:
			case <-tick.C():
			case <-deadline.C():
				break wait
			}
		}
		m.kill(p, dir)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// exitedChan is closed when the child pid of this mounter is reaped; nil
// (never ready) for other processes.
func (m *SystemMounter) exitedChan(pid int) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.children[pid]
}

// detach lazily unmounts every mount stacked at dir.
func (m *SystemMounter) detach(dir string) error {
	for range 8 {
		if _, ok, _ := m.MountedAt(dir); !ok {
			return nil
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// kill ends the mount process p, if it is still the same process, and
// the processes of its session that serve dir (the JuiceFS server the
// supervisor forked, which outlives it).
func (m *SystemMounter) kill(p Proc, dir string) {
	if p.PID <= 1 {
		return
	}
	if st, ok := procStat(p.PID); ok && (p.Start == 0 || st.start == p.Start) {
		syscall.Kill(p.PID, syscall.SIGKILL)
	}
	for _, c := range sessionServers(p.PID, dir) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	if exited := m.exitedChan(p.PID); exited != nil {
		// A fixed safety bound on the reaper after SIGKILL, in the
		// stop path: real time on purpose, it decides nothing.
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// ProcessAlive implements Mounter.
func (m *SystemMounter) ProcessAlive(p Proc, dir string) bool {
	if p.PID <= 0 {
		return false
	}
	if exited := m.exitedChan(p.PID); exited != nil {
		select {
		case <-exited:
			return len(sessionServers(p.PID, dir)) > 0
		default:
		}
	}
	st, ok := procStat(p.PID)
	if ok && st.state != 'Z' && st.state != 'X' && (p.Start == 0 || st.start == p.Start) && namesDir(p.PID, dir) {
		return true
	}
	return len(sessionServers(p.PID, dir)) > 0
}

// Health implements Mounter.
func (m *SystemMounter) Health(dir string) MountHealth {
	mi, ok, err := m.MountedAt(dir)
	if err != nil || !ok {
		return MountMissing
	}
	if !strings.HasPrefix(mi.FsType, "fuse") {
		return MountBroken
	}
	done := make(chan error, 1)
	go func() {
		// A stat may be answered from the kernel's attribute cache for
		// a while after the FUSE server is gone; a statfs always goes to
		// the server, so a dead connection shows at once.
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			done <- err
			return
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			done <- err
			return
		}
		done <- nil
	}()
	t := m.clock().NewTimer(m.statTimeout())
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			// ENOTCONN ("transport endpoint is not connected") when
			// the server is gone; any other error is as bad.
			return MountBroken
		}
		return MountHealthy
	case <-t.C():
		return MountUnresponsive
	}
}

// MountedAt implements Mounter.
func (m *SystemMounter) MountedAt(dir string) (mountutils.MountInfo, bool, error) {
	infos, err := mountutils.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return mountutils.MountInfo{}, false, err
	}
	want := canonical(dir)
	var top mountutils.MountInfo
	found := false
	for _, mi := range infos {
		if mi.MountPoint == want || mi.MountPoint == dir {
			top, found = mi, true // later lines are mounted on top
		}
	}
	return top, found, nil
}

// canonical resolves symlinks in dir's parent (dir itself may be a dead
// mount that cannot be resolved).
func canonical(dir string) string {
	dir = filepath.Clean(dir)
	parent, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return dir
	}
	return filepath.Join(parent, filepath.Base(dir))
}

// Bind implements Mounter.
func (m *SystemMounter) Bind(root, rel, target string, flags BindFlags) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	// The kernel resolves rel beneath root, refusing symlinks (ELOOP)
	// and mount crossings (EXDEV): a symlink swapped in after the
	// metadata check cannot lead the bind elsewhere.
	fd, err := unix.Openat2(rootFD, strings.TrimLeft(rel, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return &os.PathError{Op: "openat2", Path: filepath.Join(root, rel), Err: err}
	}
	defer unix.Close(fd)
	src := fmt.Sprintf("/proc/self/fd/%d", fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: target, Err: err}
	}
	fl := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if flags.NoExec {
		fl |= unix.MS_NOEXEC
	}
	if err := unix.Mount("", target, "", fl, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return &os.PathError{Op: "remount read-only", Path: target, Err: err}
	}
	return nil
}

// Unmount implements Mounter.
func (m *SystemMounter) Unmount(target string) error {
	if _, ok, _ := m.MountedAt(target); !ok {
		return nil
	}
	if m.Health(target) == MountHealthy {
		err := unix.Unmount(target, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			if _, ok, _ := m.MountedAt(target); !ok {
				return nil
			}
		}
	}
	if err := m.detach(target); err != nil {
		return &os.PathError{Op: "unmount", Path: target, Err: err}
	}
	return nil
}
