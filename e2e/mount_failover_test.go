package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/juicetest"
)

// TestMountSurvivesNodeKill kills a cache node (SIGKILL) in the middle of a
// large sequential read through a mount. The read completes with the right
// bytes; the test reports the longest stall between two reads.
func TestMountSurvivesNodeKill(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	data := randomBytes(t, 96<<20)
	e.write(t, map[string][]byte{"/models/big/model.safetensors": data})
	nodes, _ := startCluster(t, e)
	// A small read-ahead, so that the blocks after the kill are fetched
	// after it: with the default 1 GiB buffer the whole file is prefetched
	// before a third of it is read.
	m := e.mount(t, mountOpts{node: nodes[0], subdir: "/models/big", extra: []string{"--buffer-size=32", "--prefetch=1"}})

	f, err := os.Open(filepath.Join(m.dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var total int
	var maxGap, killGap time.Duration
	killed := false
	last := time.Now()
	for {
		n, err := f.Read(buf)
		now := time.Now()
		gap := now.Sub(last)
		last = now
		if gap > maxGap {
			maxGap = gap
		}
		if killed && killGap == 0 && n > 0 {
			killGap = gap // the read right after the kill
		}
		h.Write(buf[:n])
		total += n
		if !killed && total >= len(data)/3 {
			nodes[1].kill() // a peer, not the mount's local node
			killed = true
			last = time.Now()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", total, err)
		}
	}
	if total != len(data) {
		t.Fatalf("read %d bytes, want %d", total, len(data))
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 %s after a node was killed, want %s", got, hex.EncodeToString(sum[:]))
	}
	fallbacks := m.metric(t, "ringcache_mount_fallbacks_total", "")
	if fallbacks < 1 {
		t.Error("no read fell back after the kill: the killed node owned none of the rest, the test proved nothing")
	}
	t.Logf("read %d MiB with node-2 killed at 1/3: longest stall %v, first read after the kill %v, fallbacks %v",
		total>>20, maxGap.Round(time.Millisecond), killGap.Round(time.Millisecond), fallbacks)
}
