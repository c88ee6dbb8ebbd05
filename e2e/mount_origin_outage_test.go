package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/juicetest"
)

// TestMountColdReadOriginFrozen freezes the origin (SIGSTOP of the MinIO
// process: connections are accepted and never answered, the worst case).
// A read of a block nobody cached fails with EIO within the mount's read
// timeout (default 30s) and the mount log names the block and the cause;
// warm blocks are served with the right bytes all the while; after SIGCONT
// the cold read succeeds.
func TestMountColdReadOriginFrozen(t *testing.T) {
	const bound = 30 * time.Second // csi mount --read-timeout default
	const slack = 10 * time.Second // a loaded 2-core machine
	e := newEnv(t, juicetest.FormatOptions{})
	warmData, coldData := randomBytes(t, 24<<20), randomBytes(t, 8<<20)
	e.write(t, map[string][]byte{"/models/m/warm.safetensors": warmData, "/models/m/cold.safetensors": coldData})
	nodes, _ := startCluster(t, e)
	m1 := e.mount(t, mountOpts{node: nodes[0], subdir: "/models/m"})
	m2 := e.mount(t, mountOpts{node: nodes[1], subdir: "/models/m"})
	// m1 warms the ring; m2 has read nothing yet, so its page cache holds
	// nothing and each of its reads asks the ring.
	if got, err := readFileSHA(filepath.Join(m1.dir, "warm.safetensors")); err != nil || got != sha(warmData) {
		t.Fatalf("warming read: %v", err)
	}

	pid := pidListeningOn(e.minio.Addr)
	if pid == 0 {
		t.Fatalf("no process listens on MinIO's address %s", e.minio.Addr)
	}
	stopped := true
	cont := func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
			stopped = false
		}
	}
	t.Cleanup(cont)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.proxy.Reset()

	type outcome struct {
		err  error
		took time.Duration
	}
	cold := make(chan outcome, 1)
	start := time.Now()
	go func() {
		_, err := readFileSHA(filepath.Join(m2.dir, "cold.safetensors"))
		cold <- outcome{err, time.Since(start)}
	}()
	// Warm reads during the outage, while the cold read waits.
	warmReads := 0
	for warmReads < 3 {
		got, err := readFileSHA(filepath.Join(m2.dir, "warm.safetensors"))
		if err != nil || got != sha(warmData) {
			t.Fatalf("warm read %d during the outage: sha %s, err %v", warmReads+1, got, err)
		}
		warmReads++
		// Drop m2's page cache for the file so the next read asks the ring again.
		if err := dropPageCache(filepath.Join(m2.dir, "warm.safetensors")); err != nil {
			t.Fatal(err)
		}
	}
	var o outcome
	select {
	case o = <-cold:
	case <-time.After(bound + slack - time.Since(start)):
		cont()
		o = <-cold
		t.Fatalf("the cold read was still blocked %v after the origin stopped (bound %v); it ended %v after the stop with %v",
			bound+slack, bound, o.took.Round(time.Second), o.err)
	}
	t.Logf("cold read with the origin frozen: %v after %v; %d warm reads of 24 MiB succeeded meanwhile", o.err, o.took.Round(time.Millisecond), warmReads)
	if !errors.Is(o.err, syscall.EIO) {
		t.Errorf("cold read with the origin frozen: %v, want EIO", o.err)
	}
	if o.took > bound+slack {
		t.Errorf("cold read failed after %v, want within %v (+%v slack)", o.took, bound, slack)
	}
	log := m2.LogTail(1 << 22)
	if !strings.Contains(log, "block read gave up") || !strings.Contains(log, `"key":"`+e.format.Name+`/chunks/`) {
		t.Errorf("mount log has no error naming the block that failed:\n%s", lastLines(log, 30))
	}
	// Warm reads after the cold read failed, still during the outage.
	if got, err := readFileSHA(filepath.Join(m2.dir, "warm.safetensors")); err != nil || got != sha(warmData) {
		t.Errorf("warm read after the cold read failed: %v", err)
	}
	during := e.proxy.Gets()
	frozenFor := time.Since(start)

	cont()
	e.proxy.Reset()
	tries := 0
	pollUntil(t, "cold read after SIGCONT", 60*time.Second, func() error {
		tries++
		got, err := readFileSHA(filepath.Join(m2.dir, "cold.safetensors"))
		if err == nil && got != sha(coldData) {
			t.Fatalf("cold read after SIGCONT: sha %s, want %s", got, sha(coldData))
		}
		return err
	})
	if tries != 1 {
		t.Errorf("the cold read needed %d tries after SIGCONT, want the first to succeed", tries)
	}
	after := e.proxy.Gets()
	t.Logf("origin GETs by key while frozen (%v): %s; after SIGCONT: %s", frozenFor.Round(time.Second), countsLine(during), countsLine(after))
	// While frozen, only the primary owner's fetch asks the origin (its
	// retries join it); it ends after JuiceFS's object client waits 30s
	// for response headers, so a longer freeze may start another.
	if frozenFor < 30*time.Second {
		for k, n := range during {
			if strings.HasPrefix(k, e.format.Name+"/chunks/") && n > 1 {
				t.Errorf("block %s: %d origin GETs while frozen, want 1", k, n)
			}
		}
		if n := len(after); n != 0 {
			t.Errorf("%d blocks fetched again after SIGCONT, want 0 (the pending fetches answer)", n)
		}
	}
	var fallbacks []string
	for _, l := range strings.Split(m2.LogTail(1<<22), "\n") {
		if strings.Contains(l, "owner failed") || strings.Contains(l, "gave up") {
			fallbacks = append(fallbacks, l)
		}
	}
	t.Logf("mount log, failed attempts (%d):\n%s", len(fallbacks), lastLines(strings.Join(fallbacks, "\n"), 20))
}

// dropPageCache asks the kernel to drop path's cached pages
// (POSIX_FADV_DONTNEED), so the next read goes to the FUSE server.
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fadviseDontNeed(int(f.Fd()))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func countsLine(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return b.String()
}

// TestMountColdReadOneGetPerBlock reads a cold model through a mount, with
// a bandwidth-capped origin so that block fetches are far slower than the
// small files read first (which set the hedging delay): every data block
// costs exactly one origin GET. Hedges that reach an owner without the
// block, which would fetch it a second time, are not sent.
func TestMountColdReadOneGetPerBlock(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	files := map[string][]byte{}
	for i := range 24 {
		files[fmt.Sprintf("/models/m/a-%02d.json", i)] = randomBytes(t, 4<<10)
	}
	for i := range 3 {
		files[fmt.Sprintf("/models/m/z-%d.safetensors", i)] = randomBytes(t, 16<<20)
	}
	e.write(t, files)
	blocks := e.blocks(t)
	nodes, _ := startCluster(t, e)
	m := e.mount(t, mountOpts{node: nodes[0], subdir: "/models/m"})

	e.proxy.Reset()
	e.proxy.Throttle(5*time.Millisecond, 24<<20) // 24 MB/s shared: a 4 MiB block takes >= 170 ms
	checkTree(t, readTree(t, m.dir), e.wantTree("/models/m"))
	e.proxy.Throttle(0, 0)
	gets := e.proxy.Gets()
	total, twice := 0, map[string]int{}
	for k, n := range gets {
		if !strings.HasPrefix(k, e.format.Name+"/chunks/") {
			continue
		}
		total += n
		if n != 1 {
			twice[k] = n
		}
	}
	hedges := m.metric(t, "ringcache_mount_hedges_total", "")
	skipped := m.metric(t, "ringcache_mount_hedges_skipped_total", "")
	t.Logf("cold read of %d blocks: %d origin GETs, %v hedges sent, %v hedges skipped (next owner without the block)", len(blocks), total, hedges, skipped)
	if total != len(blocks) || len(twice) != 0 {
		t.Errorf("%d origin GETs for %d distinct blocks; fetched more than once: %v", total, len(blocks), twice)
	}
	for k := range blocks {
		if gets[e.format.Name+"/"+k] == 0 {
			t.Errorf("block %s never fetched from the origin", k)
		}
	}
}
