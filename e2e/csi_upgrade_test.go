package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mmapReader reads a file of a target over and over, through a shared
// read-only mapping and through read(2), and counts passes, wrong sums,
// faults (SIGBUS, turned into panics by SetPanicOnFault) and read errors.
type mmapReader struct {
	want                            string
	passes, wrong, faults, readErrs atomic.Int64
	lastErr                         atomic.Value
	stop                            chan struct{}
	wg                              sync.WaitGroup
}

func startMmapReader(t *testing.T, path, want string) *mmapReader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	r := &mmapReader{want: want, stop: make(chan struct{})}
	r.wg.Add(2)
	go func() { // the mapping
		defer r.wg.Done()
		debug.SetPanicOnFault(true)
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						r.faults.Add(1)
						r.lastErr.Store(fmt.Sprint(p))
					}
				}()
				// Touch every page afresh: drop the cached pages first.
				unix.Madvise(data, unix.MADV_DONTNEED)
				sum := sha256.Sum256(data)
				if hex.EncodeToString(sum[:]) != r.want {
					r.wrong.Add(1)
				}
				r.passes.Add(1)
			}()
		}
	}()
	go func() { // read(2)
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			h := sha256.New()
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				r.readErrs.Add(1)
				r.lastErr.Store(err.Error())
				continue
			}
			if _, err := io.Copy(h, f); err != nil {
				r.readErrs.Add(1)
				r.lastErr.Store(err.Error())
				// Not a wait: after a failed read, back off before the
				// next pass instead of spinning on the error.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if hex.EncodeToString(h.Sum(nil)) != r.want {
				r.wrong.Add(1)
			}
			r.passes.Add(1)
		}
	}()
	t.Cleanup(func() {
		r.close()
		unix.Munmap(data)
		f.Close()
	})
	return r
}

func (r *mmapReader) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// waitPasses waits until n more passes have been read.
func (r *mmapReader) waitPasses(t *testing.T, n int64) {
	t.Helper()
	target := r.passes.Load() + n
	pollUntil(t, fmt.Sprintf("the reader makes %d more passes through the mount", n), 60*time.Second, func() error {
		if got := r.passes.Load(); got < target {
			return fmt.Errorf("%d passes made, want %d", got-target+n, n)
		}
		return nil
	})
}

// TestCSINodeUpgradeWhileMmapped: a process maps a safetensors shard of a
// published model and reads it (and read(2)s it) while the node plugin is
// replaced by a new binary at a new path (kill, start the new one, which
// copies itself into the state dir for the launcher and adopts the
// mounts): no SIGBUS, no EIO, every pass the right sha256, the mount
// processes untouched.
func TestCSINodeUpgradeWhileMmapped(t *testing.T) {
	ce := newCSINodeEnv(t)
	plugin := []string{"--unmount-delay", "30s", "--repair-interval", "1s", "--launcher", "env --"}
	p := ce.startPlugin(t, plugin...)
	pod := ce.target("pod-mmap")
	publish(t, p, ce.publishReq("pv-mmap", llamaPath, pod))
	shard := "/model-00001-of-00002.safetensors"
	want := ce.wantTree(llamaPath)[shard]
	r := startMmapReader(t, filepath.Join(pod, shard), want)
	r.waitPasses(t, 4)
	mountPIDs := procsNaming(filepath.Join(ce.state, "volumes", "models"))

	// The new binary: a copy at a new path.
	newBin := filepath.Join(t.TempDir(), "v2", "csi")
	if err := os.MkdirAll(filepath.Dir(newBin), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(binDir, "csi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newBin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		p.kill()
		r.waitPasses(t, 2) // reads go on without a plugin
		if round%2 == 0 {
			p.bin = newBin
		} else {
			p.bin = ""
		}
		p.start()
		r.waitPasses(t, 4)
	}
	r.close()
	t.Logf("mmap reader: %d passes, %d wrong, %d faults, %d read errors (last: %v)",
		r.passes.Load(), r.wrong.Load(), r.faults.Load(), r.readErrs.Load(), r.lastErr.Load())
	if r.wrong.Load() != 0 || r.faults.Load() != 0 || r.readErrs.Load() != 0 {
		t.Errorf("across three plugin upgrades: %d wrong sums, %d faults (SIGBUS), %d read errors", r.wrong.Load(), r.faults.Load(), r.readErrs.Load())
	}
	if now := procsNaming(filepath.Join(ce.state, "volumes", "models")); fmt.Sprint(sorted(now)) != fmt.Sprint(sorted(mountPIDs)) {
		t.Errorf("the upgrade replaced the mount processes: %v, then %v", mountPIDs, now)
	}
	checkTree(t, readTree(t, pod), ce.wantTree(llamaPath))
}
