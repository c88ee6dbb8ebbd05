// Package storm runs a scale-up storm on a local deployment
// (internal/cluster): a throttled origin, cache nodes, a sample model in a
// JuiceFS volume, and several read-only FUSE mounts (standing in for
// inference nodes) reading the whole model at once, straight from the origin
// and through the ring. The demo and the benchmarks share it.
package storm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cluster"
)

// Config describes a storm.
type Config struct {
	Bin       string        // directory with the cachenode and csi binaries
	Dir       string        // work directory (servers, caches, mounts)
	Nodes     int           // cache nodes
	Readers   int           // concurrent mounts, spread over the nodes' hosts
	Shards    int           // weight shards in the model
	ShardSize int64         // bytes per shard
	Bandwidth int64         // origin bandwidth cap, bytes/s
	Latency   time.Duration // added to every origin request
	MountArgs []string      // extra flags for every mount
	Phases    []Phase       // what to run, in order
	KillAfter time.Duration // with KillNode: kill the last node this long into each ring phase
	Log       io.Writer     // progress lines (may be nil)
}

func (c Config) killsANode() bool {
	for _, p := range c.Phases {
		if p.Kill {
			return true
		}
	}
	return false
}

// Phase is one round of readers.
type Phase struct {
	Name   string // shown in results
	Direct bool   // readers read straight from the origin
	Kill   bool   // kill a cache node KillAfter into the phase
}

// Result is what one phase measured.
type Result struct {
	Name          string  `json:"name"`
	Seconds       float64 `json:"seconds"`
	ModelBytes    int64   `json:"model_bytes"`
	Readers       int     `json:"readers"`
	OriginBytes   int64   `json:"origin_bytes"`
	OriginGets    int     `json:"origin_block_gets"`
	ThroughputMBs float64 `json:"aggregate_throughput_mb_s"`
	LocalBytes    float64 `json:"local_node_bytes"`
	PeerBytes     float64 `json:"peer_bytes"`
	DirectBytes   float64 `json:"origin_direct_bytes"`
	Hedges        float64 `json:"hedges"`
	Fallbacks     float64 `json:"fallbacks"`
	// Latencies of the readers' 1 MiB reads, milliseconds.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Timeline: bytes read by all readers in each 250 ms interval.
	Timeline []int64 `json:"timeline_bytes_per_250ms"`
}

// Run starts the deployment, writes the model and runs the phases.
func Run(ctx context.Context, c Config) ([]Result, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("FUSE mounts need root")
	}
	if c.Nodes < 1 || c.Readers < 1 || c.Shards < 1 || c.ShardSize < 1<<20 {
		return nil, errors.New("nodes, readers and shards must be >= 1 and the shard size >= 1 MiB")
	}
	logf := func(format string, args ...any) {
		if c.Log != nil {
			fmt.Fprintf(c.Log, format, args...)
		}
	}
	bin, err := filepath.Abs(c.Bin)
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"cachenode", "csi"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s binary not found in %s", b, bin)
		}
	}
	logf("Starting Redis, MinIO and an origin proxy (%v latency, %s/s cap) in %s\n", c.Latency, bytesize.Format(c.Bandwidth), c.Dir)
	env, err := cluster.Start(ctx, cluster.Options{Dir: c.Dir, Bin: bin})
	if err != nil {
		return nil, err
	}
	defer env.Close()

	model, sums := sampleModel(c)
	var modelBytes int64
	for _, b := range model {
		modelBytes += int64(len(b))
	}
	logf("Writing a %s model (%d shards of %s plus configs) into JuiceFS volume %q\n", bytesize.Format(modelBytes), c.Shards, bytesize.Format(c.ShardSize), env.Format.Name)
	if err := env.Write(ctx, model); err != nil {
		return nil, err
	}
	model = nil // the sums are enough from here on
	env.Proxy.Throttle(c.Latency, c.Bandwidth)

	logf("Starting %d cache nodes\n", c.Nodes)
	nodes, _, err := env.StartNodes(ctx, c.Nodes)
	if err != nil {
		return nil, err
	}
	var rs []Result
	for i, p := range c.Phases {
		logf("%d readers read the whole model at once, %s...\n", c.Readers, p.Name)
		r, err := runPhase(ctx, env, nodes, c, i, p, sums, modelBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// sampleModel returns the model's files and their sha256.
func sampleModel(c Config) (map[string][]byte, map[string]string) {
	files := map[string][]byte{}
	for i := range c.Shards {
		b := make([]byte, c.ShardSize)
		rand.Read(b)
		files[fmt.Sprintf("/models/demo-llm/v1/model-%05d-of-%05d.safetensors", i+1, c.Shards)] = b
	}
	files["/models/demo-llm/v1/config.json"] = []byte(`{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32}`)
	tok := make([]byte, 0, 2<<20)
	for i := 0; len(tok) < 2<<20; i++ {
		tok = fmt.Appendf(tok, `"token_%d": %d, `, i, i)
	}
	files["/models/demo-llm/v1/tokenizer.json"] = tok
	sums := map[string]string{}
	for p, b := range files {
		s := sha256.Sum256(b)
		sums[filepath.Base(p)] = hex.EncodeToString(s[:])
	}
	return files, sums
}

// recorder collects read latencies and a throughput timeline.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	lat   []time.Duration
	bins  []int64
}

func (r *recorder) add(n int, took time.Duration, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, took)
	i := int(at.Sub(r.start) / (250 * time.Millisecond))
	for len(r.bins) <= i {
		r.bins = append(r.bins, 0)
	}
	r.bins[i] += int64(n)
}

func runPhase(ctx context.Context, env *cluster.Env, nodes []*cluster.Node, c Config, idx int, p Phase, sums map[string]string, modelBytes int64) (Result, error) {
	var mounts []*cluster.Mount
	defer func() {
		for _, m := range mounts {
			m.Unmount()
		}
	}()
	live := nodes
	if c.killsANode() && len(nodes) > 1 {
		live = nodes[:len(nodes)-1] // the last node gets killed; mounts use the others' hosts in every phase
	}
	for i := range c.Readers {
		o := cluster.MountOptions{Subdir: "/models/demo-llm/v1", Direct: p.Direct, Args: c.MountArgs}
		if !p.Direct {
			o.Node = live[i%len(live)]
		}
		m, err := env.Mount(fmt.Sprintf("phase-%d-reader-%d", idx+1, i+1), o)
		if err != nil {
			return Result{}, err
		}
		mounts = append(mounts, m)
	}
	env.Proxy.Reset()
	rec := &recorder{start: time.Now()}
	if p.Kill {
		// Real time on purpose: the kill lands KillAfter into a read of
		// real processes, which a fake clock would not move.
		t := time.AfterFunc(c.KillAfter, nodes[len(nodes)-1].Kill)
		defer t.Stop()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(mounts))
	for _, m := range mounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readModel(ctx, m.Dir, sums, rec)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return Result{}, err
		}
	}
	r := Result{Name: p.Name, Seconds: time.Since(rec.start).Seconds(), ModelBytes: modelBytes, Readers: len(mounts),
		OriginBytes: env.Proxy.Bytes(), OriginGets: env.OriginBlockGets(), Timeline: rec.bins}
	r.ThroughputMBs = float64(modelBytes) * float64(len(mounts)) / r.Seconds / 1e6
	slices.Sort(rec.lat)
	if n := len(rec.lat); n > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.P50ms, r.P99ms, r.MaxMs = ms(rec.lat[n/2]), ms(rec.lat[n*99/100]), ms(rec.lat[n-1])
	}
	if !p.Direct {
		for _, m := range mounts {
			l, _ := m.Metric("ringcache_mount_read_bytes_total", `source="local"`)
			pb, _ := m.Metric("ringcache_mount_read_bytes_total", `source="peer"`)
			o, _ := m.Metric("ringcache_mount_read_bytes_total", `source="origin"`)
			h, _ := m.Metric("ringcache_mount_hedges_total", "")
			f, _ := m.Metric("ringcache_mount_fallbacks_total", "")
			r.LocalBytes, r.PeerBytes, r.DirectBytes = r.LocalBytes+l, r.PeerBytes+pb, r.DirectBytes+o
			r.Hedges, r.Fallbacks = r.Hedges+h, r.Fallbacks+f
		}
	}
	return r, nil
}

// readModel reads every model file in dir, 1 MiB at a time, recording each
// read, and checks every file's sha256.
func readModel(ctx context.Context, dir string, sums map[string]string, rec *recorder) error {
	buf := make([]byte, 1<<20)
	for name, want := range sums {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		h := sha256.New()
		for {
			if ctx.Err() != nil {
				f.Close()
				return ctx.Err()
			}
			start := time.Now()
			n, err := io.ReadFull(f, buf)
			now := time.Now()
			if n > 0 {
				rec.add(n, now.Sub(start), now)
				h.Write(buf[:n])
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("read %s: %w", name, err)
			}
		}
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%s: sha256 %s, want %s", name, got, want)
		}
	}
	return nil
}

// Print writes the results side by side.
func Print(w io.Writer, rs []Result) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttime\tpulled from origin\t× model\taggregate read\tfrom peers / local node / origin\thedges\t")
	for _, r := range rs {
		share := "-"
		if tot := r.LocalBytes + r.PeerBytes + r.DirectBytes; tot > 0 {
			share = fmt.Sprintf("%.0f%% / %.0f%% / %.0f%%", 100*r.PeerBytes/tot, 100*r.LocalBytes/tot, 100*r.DirectBytes/tot)
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%s\t%.2f×\t%.0f MB/s\t%s\t%.0f\t\n", r.Name, r.Seconds, bytesize.Format(r.OriginBytes),
			float64(r.OriginBytes)/float64(r.ModelBytes), r.ThroughputMBs, share, r.Hedges)
	}
	tw.Flush()
}
