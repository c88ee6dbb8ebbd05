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
	*process
	Addr      string // host:port
	AccessKey string
	SecretKey string
}

// RunMinIO starts a MinIO server with its data in dir. Close stops it.
func RunMinIO(dir string) (*MinIO, error) {
	bin, err := FindBinary("RINGCACHE_MINIO", "minio", filepath.Join(CacheDir(), "bin", "minio-"+MinIOVersion, "minio"))
	if err != nil {
		return nil, err
	}
	port, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	cport, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{Addr: fmt.Sprintf("127.0.0.1:%d", port), AccessKey: "ringcacheadmin", SecretKey: "ringcache-secret-key"}
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", m.Addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	if m.process, err = startProcess(cmd, filepath.Join(dir, "minio.log")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + m.Addr + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			m.Close()
			return nil, fmt.Errorf("minio not live after 60s: %v\n%s", err, m.logTail())
		}
		time.Sleep(100 * time.Millisecond) // polls MinIO's health endpoint with a deadline
	}
}

// StartMinIO starts a MinIO server for a test, stopped when it ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m, err := RunMinIO(t.TempDir())
	check(t, err)
	cleanup(t, m.process)
	return m
}
