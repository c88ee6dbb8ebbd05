// Package realtest starts the real servers that ringcache's tests run
// against, each on its own loopback port and directory: a Redis server (the
// JuiceFS metadata engine), a MinIO server (the S3 origin) and an origin
// proxy in front of MinIO that counts requests and can add object-store-like
// latency and a bandwidth cap. It is for tests only.
//
// Binaries are found through environment variables set by the test command
// (scripts/test.sh), then on PATH and in the version-keyed cache directory.
// When one is missing the test is skipped, unless RINGCACHE_REQUIRE_REAL=1
// (CI), which makes it fail.
package realtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinIOVersion is the MinIO module version the test command builds.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// CacheDir is where the test command keeps slow one-time builds.
func CacheDir() string {
	if d := os.Getenv("RINGCACHE_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "ringcache")
}

// Binary finds a tool: $env, then PATH, then the cache directory.
func Binary(t testing.TB, env, name string, cached ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, c := range cached {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	Missing(t, "%s not found (set %s or run the test command in README.md)", name, env)
	return ""
}

// Missing skips the test, or fails it when real components are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("RINGCACHE_REQUIRE_REAL") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
		time.Sleep(50 * time.Millisecond)
	}
}

// logFile creates dir/name for a server's output.
func logFile(t testing.TB, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// dumpOnFailure prints the tail of a server log when the test fails.
func dumpOnFailure(t testing.TB, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(path)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- %s ---\n%s", path, b)
	})
}
