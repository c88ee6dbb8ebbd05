package realtest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Redis is a running redis-server.
type Redis struct {
	*process
	Addr string

	mu   sync.Mutex
	next int
}

// RunRedis starts a redis-server with its files in dir. Close stops it.
func RunRedis(dir string) (*Redis, error) {
	bin, err := FindBinary("RINGCACHE_REDIS_SERVER", "redis-server")
	if err != nil {
		return nil, err
	}
	port, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--databases", "64")
	p, err := startProcess(cmd, filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	r := &Redis{process: p, Addr: fmt.Sprintf("127.0.0.1:%d", port), next: 1}
	if err := waitTCP(r.Addr, 10*time.Second); err != nil {
		p.Close()
		return nil, fmt.Errorf("redis: %w\n%s", err, p.logTail())
	}
	return r, nil
}

// StartRedis starts a redis-server for a test, stopped when it ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r, err := RunRedis(t.TempDir())
	check(t, err)
	cleanup(t, r.process)
	return r
}

// NewDatabase returns the URL of a fresh database (one per volume).
func (r *Redis) NewDatabase() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= 64 {
		return "", fmt.Errorf("redis: out of databases")
	}
	r.next++
	return fmt.Sprintf("redis://%s/%d", r.Addr, r.next-1), nil
}

// NewDB is NewDatabase for tests.
func (r *Redis) NewDB(t testing.TB) string {
	t.Helper()
	u, err := r.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return u
}
