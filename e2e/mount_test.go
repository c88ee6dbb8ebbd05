package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ringcache/ringcache/internal/juicetest"
)

// sampleModel is a small "model": two weight shards and config files.
func sampleModel(t *testing.T, dir string, shard int) map[string][]byte {
	return map[string][]byte{
		dir + "/model-00001-of-00002.safetensors": randomBytes(t, shard+54321),
		dir + "/model-00002-of-00002.safetensors": randomBytes(t, shard/2),
		dir + "/config.json":                      bytes.Repeat([]byte(`{"hidden_size": 4096},`), 200),
		dir + "/tokenizer.json":                   bytes.Repeat([]byte(`{"a": 1},`), 5000),
	}
}

// TestMountReadsThroughRing: two read-only FUSE mounts of the same model
// directory read through three cache nodes; the second causes no origin
// GETs for data blocks, and writes fail.
func TestMountReadsThroughRing(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, sampleModel(t, "/models/llama-7b", 12<<20))
	e.write(t, map[string][]byte{"/models/other/x.bin": randomBytes(t, 1<<20)})
	nodes, _ := startCluster(t, e)
	want := e.wantTree("/models/llama-7b")

	m1 := e.mount(t, mountOpts{node: nodes[0], subdir: "/models/llama-7b"})
	m2 := e.mount(t, mountOpts{node: nodes[1], subdir: "/models/llama-7b"})

	e.proxy.Reset()
	checkTree(t, readTree(t, m1.dir), want)
	first := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/")
	t.Logf("first mount: %d origin GETs of data blocks", first)
	if first == 0 {
		t.Error("first mount caused no origin GETs: the cold read did not reach the origin")
	}

	e.proxy.Reset()
	checkTree(t, readTree(t, m2.dir), want)
	if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
		t.Errorf("second mount caused %d origin GETs of data blocks, want 0", n)
	}
	peerBytes := m2.metric(t, "ringcache_mount_read_bytes_total", `source="peer"`) + m2.metric(t, "ringcache_mount_read_bytes_total", `source="local"`)
	if peerBytes == 0 {
		t.Error("second mount read no bytes from the ring")
	}

	// Read-only: writes fail with EROFS and change nothing.
	err := os.WriteFile(filepath.Join(m1.dir, "config.json"), []byte("{}"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("write through the mount: got %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(m1.dir, "new-file"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create through the mount: got %v, want EROFS", err)
	}
	if err := os.Remove(filepath.Join(m1.dir, "config.json")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("remove through the mount: got %v, want EROFS", err)
	}
	checkTree(t, readTree(t, m2.dir), want)
	// The sub-directory mount shows only the model.
	if _, err := os.Stat(filepath.Join(m1.dir, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("subdir mount shows other directories: %v", err)
	}
}
