// Package realtest starts the real servers that ringcache's tests, demo and
// benchmarks run against, each on its own loopback port and directory: a
// Redis server (the JuiceFS metadata engine), a MinIO server (the S3
// origin) and an origin proxy in front of MinIO that counts requests and can
// add object-store-like latency and a bandwidth cap.
//
// Binaries are found through environment variables set by scripts/deps.sh,
// then on PATH and in the version-keyed cache directory. In tests, a missing
// binary skips the test, unless RINGCACHE_REQUIRE_REAL=1 (the test
// command), which makes it fail.
package realtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinIOVersion is the MinIO module version scripts/deps.sh builds.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// ErrMissing is returned when a server binary cannot be found.
var ErrMissing = errors.New("binary not found")

// CacheDir is where the test command keeps slow one-time builds.
func CacheDir() string {
	if d := os.Getenv("RINGCACHE_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "ringcache")
}

// FindBinary finds a tool: $env, then PATH, then the cached paths.
func FindBinary(env, name string, cached ...string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, c := range cached {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %s (set %s or run scripts/deps.sh)", ErrMissing, name, env)
}

// Missing skips the test, or fails it when real components are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("RINGCACHE_REQUIRE_REAL") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// check ends a test on a start error: Missing for a missing binary, Fatal
// otherwise.
func check(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissing) {
		Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := FreeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeTCPPort returns a free TCP port on 127.0.0.1.
func FreeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polls the server's port with a deadline
	}
}

// process is a started server with its log file.
type process struct {
	cmd     *exec.Cmd
	LogPath string
}

func startProcess(cmd *exec.Cmd, logPath string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	return &process{cmd: cmd, LogPath: logPath}, nil
}

// Close kills the server and waits for it.
func (p *process) Close() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// logTail returns the end of the server's log.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cleanup stops p when the test ends and prints its log if the test failed.
func cleanup(t testing.TB, p *process) {
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("--- %s ---\n%s", p.LogPath, p.logTail())
		}
	})
}
