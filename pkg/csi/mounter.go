package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// it stops what it started. It returns the process ID.
	StartFUSE(ctx context.Context, spec MountSpec) (pid int, err error)
	// StopFUSE unmounts the FUSE mount at dir (lazily when it is dead or
	// busy) and makes sure the mount process pid (0: unknown) and its
	// children have exited.
	StopFUSE(dir string, pid int) error
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
	// ProcessAlive reports whether pid is a live mount process for dir
	// (its command line names dir, or a file in dir's parent).
	ProcessAlive(pid int, dir string) bool
}

// SystemMounter is the Mounter of a real node: processes, mount(2),
// umount(2), openat2(2) and /proc/self/mountinfo.
type SystemMounter struct {
	// StatTimeout bounds the stat that checks whether a FUSE mount
	// answers; default 5s.
	StatTimeout time.Duration
	// StopTimeout is how long StopFUSE waits for a mount process to exit
	// after its unmount before killing it; default 10s.
	StopTimeout time.Duration

	mu       sync.Mutex
	children map[int]chan struct{} // processes this mounter started, closed when reaped
}

var _ Mounter = (*SystemMounter)(nil)

func (m *SystemMounter) statTimeout() time.Duration {
	if m.StatTimeout > 0 {
		return m.StatTimeout
	}
	return 5 * time.Second
}

func (m *SystemMounter) stopTimeout() time.Duration {
	if m.StopTimeout > 0 {
		return m.StopTimeout
	}
	return 10 * time.Second
}

// StartFUSE implements Mounter.
func (m *SystemMounter) StartFUSE(ctx context.Context, spec MountSpec) (int, error) {
	if len(spec.Argv) == 0 {
		return 0, errors.New("start mount: empty command")
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("start mount: %w", err)
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
		return 0, fmt.Errorf("start mount: %w", err)
	}
	pid := cmd.Process.Pid
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
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.Health(spec.Dir) == MountHealthy {
			return pid, nil
		}
		select {
		case <-exited:
			m.detach(spec.Dir)
			return 0, fmt.Errorf("mount process exited before mounting %s; its log %s ends: %s", spec.Dir, spec.LogFile, logTail(spec.LogFile, 600, spec.Secrets))
		case <-ctx.Done():
			m.kill(pid)
			m.detach(spec.Dir)
			return 0, fmt.Errorf("%s not mounted: %w (log %s)", spec.Dir, ctx.Err(), spec.LogFile)
		case <-tick.C:
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
func (m *SystemMounter) StopFUSE(dir string, pid int) error {
	var err error
	if _, ok, _ := m.MountedAt(dir); ok {
		if m.Health(dir) == MountHealthy {
			err = unix.Unmount(dir, 0)
		}
		if err != nil || m.Health(dir) != MountHealthy {
			err = m.detach(dir)
		}
	}
	if pid > 0 {
		deadline := time.Now().Add(m.stopTimeout())
		for m.ProcessAlive(pid, dir) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if m.ProcessAlive(pid, dir) {
			m.kill(pid)
		}
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
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

// kill ends the process group of a mount process (the JuiceFS supervisor
// and the server it runs share it), and the process itself.
func (m *SystemMounter) kill(pid int) {
	if pid <= 1 {
		return
	}
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	for _, c := range childrenOf(pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	m.mu.Lock()
	exited := m.children[pid]
	m.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// procStat returns a process's parent and state from /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+4 > len(s) {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// ProcessAlive implements Mounter: pid runs (not a zombie) and its command
// line names dir or a file next to it (so that a reused PID is not taken
// for the mount process).
func (m *SystemMounter) ProcessAlive(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	m.mu.Lock()
	exited := m.children[pid]
	m.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
			return false
		default:
		}
	}
	_, state, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// JuiceFS (gspt) rewrites its process title to its arguments joined
	// by spaces and may cut the end, where dir is; the metadata URL file
	// next to dir comes earlier.
	cmdline := string(b)
	return strings.Contains(cmdline, dir) || strings.Contains(cmdline, filepath.Dir(dir)+string(filepath.Separator))
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
		var st unix.Stat_t
		done <- unix.Stat(dir, &st)
	}()
	select {
	case err := <-done:
		if err != nil {
			// ENOTCONN ("transport endpoint is not connected") when
			// the server is gone; any other error is as bad.
			return MountBroken
		}
		return MountHealthy
	case <-time.After(m.statTimeout()):
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
