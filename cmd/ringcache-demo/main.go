// Command ringcache-demo runs ringcache's main job on one machine and
// prints what it changes: a throttled origin object store (MinIO behind a
// proxy with object-store-like latency and a bandwidth cap), a Redis
// metadata engine, a few cache nodes, a sample model (safetensors-sized
// shards and small config files) in a JuiceFS volume, and several read-only
// mounts standing in for inference nodes that read the whole model at once,
// first straight from the origin and then through the ring.
//
// It needs root (FUSE mounts), the cachenode and csi binaries (--bin), and
// Redis and MinIO (found as scripts/deps.sh installs them). `make demo` does
// all of it.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cluster"
)

type config struct {
	bin, workdir, jsonOut  string
	nodes, readers, shards int
	shardSize, bandwidth   int64
	latency                time.Duration
	keep                   bool
	skipOrigin             bool
	mountArgs              stringList
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var c config
	c.shardSize, c.bandwidth = 64<<20, 100<<20
	flag.StringVar(&c.bin, "bin", "bin", "directory with the cachenode and csi binaries")
	flag.StringVar(&c.workdir, "workdir", "", "directory for servers, caches and mounts (default: a temporary one, removed at the end)")
	flag.IntVar(&c.nodes, "nodes", 3, "cache nodes")
	flag.IntVar(&c.readers, "readers", 4, "concurrent readers (mounts), each on a cache node's host")
	flag.IntVar(&c.shards, "shards", 4, "weight shards in the sample model")
	flag.Var(bytesize.Value{N: &c.shardSize}, "shard-size", "size of one weight shard")
	flag.Var(bytesize.Value{N: &c.bandwidth}, "origin-bandwidth", "origin bandwidth cap (bytes/s)")
	flag.DurationVar(&c.latency, "origin-latency", 20*time.Millisecond, "latency the origin adds to every request")
	flag.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&c.skipOrigin, "skip-origin", false, "skip the straight-from-origin phase")
	flag.Var(&c.mountArgs, "mount-arg", "extra flag for every mount (repeatable), e.g. --mount-arg=--buffer-size=300")
	flag.Parse()
	if c.nodes < 1 || c.readers < 1 || c.shards < 1 || c.shardSize < 1<<20 {
		fmt.Fprintln(os.Stderr, "ringcache-demo: --nodes, --readers and --shards must be >= 1 and --shard-size >= 1MiB")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ringcache-demo:", err)
		os.Exit(1)
	}
}

// phase is one round of readers.
type phase struct {
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
}

func run(ctx context.Context, c config, out io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("FUSE mounts need root")
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	for _, b := range []string{"cachenode", "csi"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s binary not found in %s (run `make build`)", b, bin)
		}
	}
	dir := c.workdir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ringcache-demo"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(dir)
		}
	}
	fmt.Fprintf(out, "Starting Redis, MinIO and an origin proxy (%v latency, %s/s cap) in %s\n", c.latency, bytesize.Format(c.bandwidth), dir)
	env, err := cluster.Start(ctx, cluster.Options{Dir: dir, Bin: bin})
	if err != nil {
		return err
	}
	defer env.Close()

	model, sums := sampleModel(c)
	var modelBytes int64
	for _, b := range model {
		modelBytes += int64(len(b))
	}
	fmt.Fprintf(out, "Writing a %s model (%d shards of %s plus configs) into JuiceFS volume %q\n", bytesize.Format(modelBytes), c.shards, bytesize.Format(c.shardSize), env.Format.Name)
	if err := env.Write(ctx, model); err != nil {
		return err
	}
	model = nil // the sums are enough from here on
	env.Proxy.Throttle(c.latency, c.bandwidth)

	fmt.Fprintf(out, "Starting %d cache nodes\n", c.nodes)
	nodes, _, err := env.StartNodes(ctx, c.nodes)
	if err != nil {
		return err
	}

	var phases []phase
	if !c.skipOrigin {
		fmt.Fprintf(out, "\n%d readers read the whole model at once, straight from the origin...\n", c.readers)
		p, err := readPhase(ctx, env, nodes, c, "straight from origin", true, sums, modelBytes)
		if err != nil {
			return err
		}
		phases = append(phases, p)
	}
	for _, name := range []string{"through the ring (cold)", "through the ring (warm)"} {
		fmt.Fprintf(out, "%d readers read the whole model at once, %s...\n", c.readers, name)
		p, err := readPhase(ctx, env, nodes, c, name, false, sums, modelBytes)
		if err != nil {
			return err
		}
		phases = append(phases, p)
	}
	printPhases(out, phases)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(phases, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sampleModel returns the model's files and their sha256.
func sampleModel(c config) (map[string][]byte, map[string]string) {
	files := map[string][]byte{}
	for i := range c.shards {
		b := make([]byte, c.shardSize)
		rand.Read(b)
		files[fmt.Sprintf("/models/demo-llm/v1/model-%05d-of-%05d.safetensors", i+1, c.shards)] = b
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

func readPhase(ctx context.Context, env *cluster.Env, nodes []*cluster.Node, c config, name string, direct bool, sums map[string]string, modelBytes int64) (phase, error) {
	var mounts []*cluster.Mount
	defer func() {
		for _, m := range mounts {
			m.Unmount()
		}
	}()
	for i := range c.readers {
		o := cluster.MountOptions{Subdir: "/models/demo-llm/v1", Direct: direct, Args: c.mountArgs}
		if !direct {
			o.Node = nodes[i%len(nodes)]
		}
		m, err := env.Mount(fmt.Sprintf("%s-reader-%d", phaseSlug(name), i+1), o)
		if err != nil {
			return phase{}, err
		}
		mounts = append(mounts, m)
	}
	env.Proxy.Reset()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(mounts))
	for _, m := range mounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readModel(ctx, m.Dir, sums)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return phase{}, err
		}
	}
	p := phase{Name: name, Seconds: time.Since(start).Seconds(), ModelBytes: modelBytes, Readers: len(mounts),
		OriginBytes: env.Proxy.Bytes(), OriginGets: env.OriginBlockGets()}
	p.ThroughputMBs = float64(modelBytes) * float64(len(mounts)) / p.Seconds / 1e6
	if !direct {
		for _, m := range mounts {
			l, _ := m.Metric("ringcache_mount_read_bytes_total", `source="local"`)
			r, _ := m.Metric("ringcache_mount_read_bytes_total", `source="peer"`)
			o, _ := m.Metric("ringcache_mount_read_bytes_total", `source="origin"`)
			h, _ := m.Metric("ringcache_mount_hedges_total", "")
			f, _ := m.Metric("ringcache_mount_fallbacks_total", "")
			p.LocalBytes, p.PeerBytes, p.DirectBytes = p.LocalBytes+l, p.PeerBytes+r, p.DirectBytes+o
			p.Hedges, p.Fallbacks = p.Hedges+h, p.Fallbacks+f
		}
	}
	return p, nil
}

func phaseSlug(name string) string {
	switch name {
	case "straight from origin":
		return "origin"
	case "through the ring (cold)":
		return "ring-cold"
	}
	return "ring-warm"
}

// readModel reads every model file in dir and checks its sha256.
func readModel(ctx context.Context, dir string, sums map[string]string) error {
	for name, want := range sums {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.CopyBuffer(h, f, make([]byte, 1<<20))
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("%s: sha256 %s, want %s", name, got, want)
		}
	}
	return nil
}

func printPhases(w io.Writer, ps []phase) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttime\tpulled from origin\t× model\taggregate read\tfrom peers / local node / origin\thedges\t")
	for _, p := range ps {
		share := "-"
		if tot := p.LocalBytes + p.PeerBytes + p.DirectBytes; tot > 0 {
			share = fmt.Sprintf("%.0f%% / %.0f%% / %.0f%%", 100*p.PeerBytes/tot, 100*p.LocalBytes/tot, 100*p.DirectBytes/tot)
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%s\t%.2f×\t%.0f MB/s\t%s\t%.0f\t\n", p.Name, p.Seconds, bytesize.Format(p.OriginBytes),
			float64(p.OriginBytes)/float64(p.ModelBytes), p.ThroughputMBs, share, p.Hedges)
	}
	tw.Flush()
	if len(ps) >= 2 && ps[0].Name == "straight from origin" && ps[1].Seconds > 0 {
		fmt.Fprintf(w, "\nThrough the ring the %d readers finished %.1f× faster from cold (%.1f× warm) and pulled %.2f× the model from the origin instead of %.2f×.\n",
			ps[0].Readers, ps[0].Seconds/ps[1].Seconds, ps[0].Seconds/ps[len(ps)-1].Seconds,
			float64(ps[1].OriginBytes)/float64(ps[1].ModelBytes), float64(ps[0].OriginBytes)/float64(ps[0].ModelBytes))
	}
}
