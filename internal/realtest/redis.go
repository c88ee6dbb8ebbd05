package realtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Redis is a running redis-server.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	next int
}

// StartRedis starts a redis-server on a free loopback port, stopped when
// the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := Binary(t, "RINGCACHE_REDIS_SERVER", "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--databases", "64")
	out := logFile(t, dir, "redis.log")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dumpOnFailure(t, filepath.Join(dir, "redis.log"))
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, next: 1}
	if err := waitTCP(r.Addr, 10*time.Second); err != nil {
		t.Fatalf("redis: %v", err)
	}
	return r
}

// NewDB returns the URL of a fresh database (one per volume).
func (r *Redis) NewDB(t testing.TB) string {
	t.Helper()
	if r.next >= 64 {
		t.Fatal("redis: out of databases")
	}
	db := r.next
	r.next++
	return fmt.Sprintf("redis://%s/%d", r.Addr, db)
}
