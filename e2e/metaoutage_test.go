package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/juicetest"
)

// probe is one file-system operation timed during a metadata outage.
type probe struct {
	name  string
	start time.Time
	done  chan struct{}
	took  time.Duration
	err   error
}

// probes runs operations concurrently and records when each ends.
type probes struct {
	mu  sync.Mutex
	all []*probe
}

func (ps *probes) run(name string, f func() error) *probe {
	p := &probe{name: name, start: time.Now(), done: make(chan struct{})}
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	go func() {
		p.err = f()
		p.took = time.Since(p.start)
		close(p.done)
	}()
	return p
}

// waitAll waits until every probe has ended or the deadline passes and
// reports whether all ended.
func (ps *probes) waitAll(deadline time.Time) bool {
	for _, p := range ps.all {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			return false
		}
	}
	return true
}

// describe reports each probe: whether it ended before at (the end of the
// outage), its error and errno, and how long it took.
func (ps *probes) describe(at time.Time) string {
	var lines []string
	for _, p := range ps.all {
		select {
		case <-p.done:
			when := "during the outage"
			if p.start.Add(p.took).After(at) {
				when = "after the metadata engine was back"
			}
			lines = append(lines, fmt.Sprintf("  %-44s ended %s after %v: %s", p.name, when, p.took.Round(time.Millisecond), errnoText(p.err)))
		default:
			lines = append(lines, fmt.Sprintf("  %-44s still blocked after %v", p.name, time.Since(p.start).Round(time.Millisecond)))
		}
	}
	return strings.Join(lines, "\n")
}

func errnoText(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return fmt.Sprintf("errno %d (%s): %v", int(en), en.Error(), err)
	}
	return err.Error()
}

// keepsOpenFiles reports whether the mount's JuiceFS settings (its
// .config) keep a file's attributes in the kernel (--attr-cache,
// --entry-cache) and its open state in JuiceFS (--open-cache) for longer
// than an outage of the given length plus a margin: only then can reads of
// open files and re-opens of recently opened ones run without the metadata
// engine. With the default 1 s attribute cache the kernel asks JuiceFS for
// the attributes before reading (FUSE auto_inval_data), which waits for
// the engine.
func keepsOpenFiles(t *testing.T, m *mount, outage time.Duration) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.dir, ".config"))
	if err != nil {
		t.Fatalf("read the mount's JuiceFS config: %v", err)
	}
	var c struct {
		Meta         struct{ OpenCache time.Duration }
		AttrTimeout  time.Duration
		EntryTimeout time.Duration
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("mount's .config: %v", err)
	}
	need := outage + time.Minute
	keeps := c.AttrTimeout >= need && c.EntryTimeout >= need && c.Meta.OpenCache >= need
	t.Logf("mount caches: attr %v, entry %v, open %v: open files readable during a %v outage: %v",
		c.AttrTimeout, c.EntryTimeout, c.Meta.OpenCache, outage, keeps)
	return keeps
}

// readAt reads length bytes at off of an open file and checks them.
func readAt(f *os.File, off int64, want []byte) error {
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil && !(errors.Is(err, io.EOF) && len(got) == len(want)) {
		return err
	}
	if sha(got) != sha(want) {
		return fmt.Errorf("wrong bytes at %d+%d", off, len(want))
	}
	return nil
}

// outageHold is how long the metadata engine stays away in each phase
// (less when every operation ended before).
const outageHold = 12 * time.Second

// TestMountMetadataOutage reads a warm model through the ring while the
// metadata engine (Redis) goes away: first killed and restarted on the
// same port with its append-only file, then killed for good and replaced
// by its promoted replica behind the same address. It reports what reads
// of open files, new opens and new mounts see during each outage (see
// docs/operations.md, "Metadata engine outage"). It asserts that no read
// or open fails, that reads of open files whose chunks JuiceFS holds and
// re-opens of recently opened files end during the outage when the
// mount's caches allow it (keepsOpenFiles), that the restarted server kept
// the volume, and that everything recovers without any action on the
// mounts: new opens, reads of chunks never read and new mounts.
func TestMountMetadataOutage(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	primary := startDurableRedis(t, "primary", "")
	replica := startDurableRedis(t, "replica", primary.Addr)
	addr := startTCPProxy(t, primary.Addr) // the address clients know
	metaURL := fmt.Sprintf("redis://%s/1", addr.Addr)
	if _, err := juicetest.Format(context.Background(), juicetest.FormatOptions{
		Name: "weights", MetaURL: metaURL, Bucket: "http://" + e.proxy.Addr + "/ringcache",
		AccessKey: e.minio.AccessKey, SecretKey: e.minio.SecretKey,
	}); err != nil {
		t.Fatal(err)
	}
	phases := []string{"restart", "failover"}
	files := map[string][]byte{
		"/m/small.safetensors": randomBytes(t, 16<<20),
		"/m/config.json":       []byte(strings.Repeat(`{"hidden_size": 4096},`, 100)),
	}
	for _, ph := range phases {
		files["/m/big-"+ph+".safetensors"] = randomBytes(t, juicetest.ChunkSize+2<<20) // two chunks
		files["/m/other-"+ph+".safetensors"] = randomBytes(t, 4<<20)
	}
	w, err := juicetest.OpenWriter(context.Background(), metaURL)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		if err := w.WriteFile(p, b); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	primary.waitFor("1", 10*time.Second, "WAIT", "1", "5000") // the replica has every write
	t.Setenv("RINGCACHE_VOLUME_WEIGHTS", metaURL)
	nodes, _ := startCluster(t, e)
	e.c.MetaURL = metaURL // the mount helper mounts this volume
	file := func(m *mount, name string) string { return filepath.Join(m.dir, name) }

	// Warm the ring through one mount, then unmount it.
	warm := e.mount(t, mountOpts{node: nodes[0], subdir: "/m"})
	for p, b := range files {
		if err := checkFileSHA(file(warm, filepath.Base(p)), b); err != nil {
			t.Fatal(err)
		}
	}
	warm.Unmount()

	// The mount under test: files opened and partly read before the
	// outage, so JuiceFS holds their first chunk's slices.
	m := e.mount(t, mountOpts{node: nodes[1], subdir: "/m"})
	small, err := os.Open(file(m, "small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := readAt(small, 0, files["/m/small.safetensors"][:1<<20]); err != nil {
		t.Fatal(err)
	}
	bigs := map[string]*os.File{}
	for _, ph := range phases {
		name := "big-" + ph + ".safetensors"
		f, err := os.Open(file(m, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := readAt(f, 0, files["/m/"+name][:128<<10]); err != nil {
			t.Fatal(err)
		}
		bigs[ph] = f
	}
	if err := checkFileSHA(file(m, "config.json"), files["/m/config.json"]); err != nil {
		t.Fatal(err)
	}

	// Whether JuiceFS can serve opens and reads of files it opened before
	// without the engine depends on the mount's cache settings.
	keeps := keepsOpenFiles(t, m, outageHold)

	outage := func(phase string, hold time.Duration, end func()) {
		big, bigWant := bigs[phase], files["/m/big-"+phase+".safetensors"]
		other := "other-" + phase + ".safetensors"
		var ps probes
		started := time.Now()
		ps.run("open file, chunk read before: rest of it", func() error {
			return readAt(small, 1<<20, files["/m/small.safetensors"][1<<20:])
		})
		ps.run("open file, second chunk never read", func() error {
			return readAt(big, juicetest.ChunkSize+1<<20, bigWant[juicetest.ChunkSize+1<<20:])
		})
		ps.run("re-open of a file read before", func() error {
			return checkFileSHA(file(m, "config.json"), files["/m/config.json"])
		})
		ps.run("new open of a file never opened", func() error {
			return checkFileSHA(file(m, other), files["/m/"+other])
		})
		ps.run("new mount", func() error {
			nm, err := e.c.Mount(fmt.Sprintf("%s-new-mount", phase), cluster.MountOptions{Node: nodes[2].Node, Subdir: "/m"})
			if err != nil {
				return err
			}
			defer nm.Unmount()
			return checkFileSHA(filepath.Join(nm.Dir, "config.json"), files["/m/config.json"])
		})
		allEnded := ps.waitAll(started.Add(hold))
		back := time.Now()
		end()
		if !ps.waitAll(time.Now().Add(120 * time.Second)) {
			t.Errorf("%s: operations still blocked 120s after the metadata engine was back:\n%s", phase, ps.describe(back))
		}
		t.Logf("%s: metadata engine down for %v (all operations ended before it was back: %v):\n%s",
			phase, back.Sub(started).Round(time.Millisecond), allEnded, ps.describe(back))
		// No read or open fails: JuiceFS blocks them until the engine is
		// back (the ring serves the data), and then they return the
		// right bytes. Reads of an open file whose chunk JuiceFS already
		// holds end during the outage only while the kernel's attributes
		// of the file are fresh (--attr-cache, 1s by default): with
		// auto_inval_data the kernel asks JuiceFS for them before a read.
		for _, p := range ps.all[:4] {
			if p.err != nil {
				t.Errorf("%s: %s: %v, want the right bytes once the engine is back", phase, p.name, p.err)
			}
		}
		if keeps {
			for _, p := range []*probe{ps.all[0], ps.all[2]} {
				if p.start.Add(p.took).After(back) {
					t.Errorf("%s: %s waited %v for the engine; with the mount's long attribute, entry and open caches it must not", phase, p.name, p.took)
				}
			}
		}
		// Recovery without action: new opens, reads of open files and
		// new mounts work once the engine is back.
		took := pollUntil(t, phase+": new open after recovery", 60*time.Second, func() error {
			return checkFileSHA(file(m, other), files["/m/"+other])
		})
		pollUntil(t, phase+": open file, second chunk, after recovery", 60*time.Second, func() error {
			return readAt(big, juicetest.ChunkSize, bigWant[juicetest.ChunkSize:])
		})
		start := time.Now()
		nm := e.mount(t, mountOpts{node: nodes[2], subdir: "/m"})
		for _, name := range []string{"config.json", "small.safetensors", other} {
			if err := checkFileSHA(file(nm, name), files["/m/"+name]); err != nil {
				t.Errorf("%s: new mount after recovery: %v", phase, err)
			}
		}
		nm.Unmount()
		t.Logf("%s: after the engine was back: a new open succeeded in %v, a new mount read the model in %v",
			phase, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}

	// 1. Restart: SIGKILL, then the same server on the same port with its
	// append-only file.
	primary.kill()
	outage("restart", outageHold, func() { primary.start() })
	// The restarted server loaded the volume from its append-only file.
	if n, err := primary.do("-n", "1", "DBSIZE"); err != nil || n == "0" {
		t.Errorf("restarted redis: DBSIZE %q, %v: the volume's metadata is gone", n, err)
	}
	replica.waitFor("master_link_status:up", 30*time.Second, "INFO", "replication")

	// 2. Failover: the primary dies for good; the replica is promoted and
	// the service address moves to it.
	primary.kill()
	outage("failover", outageHold, func() {
		replica.waitFor("OK", 10*time.Second, "REPLICAOF", "NO", "ONE")
		addr.moveTo(replica.Addr)
	})
	if err := readAt(small, 0, files["/m/small.safetensors"]); err != nil {
		t.Errorf("open file after both outages: %v", err)
	}
	if t.Failed() {
		t.Logf("mount log tail:\n%s", m.LogTail(3000))
	}
}
