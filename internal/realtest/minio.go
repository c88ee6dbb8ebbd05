package realtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinIO is a running MinIO server.
type MinIO struct {
	Addr      string // host:port
	AccessKey string
	SecretKey string
}

// StartMinIO starts a MinIO server on a free loopback port with its own
// data directory, stopped when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := Binary(t, "RINGCACHE_MINIO", "minio", filepath.Join(CacheDir(), "bin", "minio-"+MinIOVersion, "minio"))
	dir := t.TempDir()
	port, cport := FreePort(t), FreePort(t)
	m := &MinIO{Addr: fmt.Sprintf("127.0.0.1:%d", port), AccessKey: "ringcacheadmin", SecretKey: "ringcache-secret-key"}
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", m.Addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	out := logFile(t, dir, "minio.log")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dumpOnFailure(t, filepath.Join(dir, "minio.log"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + m.Addr + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not live after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
