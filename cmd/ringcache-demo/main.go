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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/storm"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	c := storm.Config{Nodes: 3, Readers: 4, Shards: 4, ShardSize: 64 << 20, Bandwidth: 100 << 20, Latency: 20 * time.Millisecond, Log: os.Stdout}
	var workdir, jsonOut string
	var keep, skipOrigin bool
	var mountArgs stringList
	flag.StringVar(&c.Bin, "bin", "bin", "directory with the cachenode and csi binaries")
	flag.StringVar(&workdir, "workdir", "", "directory for servers, caches and mounts (default: a temporary one, removed at the end)")
	flag.IntVar(&c.Nodes, "nodes", c.Nodes, "cache nodes")
	flag.IntVar(&c.Readers, "readers", c.Readers, "concurrent readers (mounts), each on a cache node's host")
	flag.IntVar(&c.Shards, "shards", c.Shards, "weight shards in the sample model")
	flag.Var(bytesize.Value{N: &c.ShardSize}, "shard-size", "size of one weight shard")
	flag.Var(bytesize.Value{N: &c.Bandwidth}, "origin-bandwidth", "origin bandwidth cap (bytes/s)")
	flag.DurationVar(&c.Latency, "origin-latency", c.Latency, "latency the origin adds to every request")
	flag.StringVar(&jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&keep, "keep", false, "keep the work directory")
	flag.BoolVar(&skipOrigin, "skip-origin", false, "skip the straight-from-origin phase")
	flag.Var(&mountArgs, "mount-arg", "extra flag for every mount (repeatable), e.g. --mount-arg=--buffer-size=300")
	flag.Parse()
	c.MountArgs = mountArgs
	if !skipOrigin {
		c.Phases = append(c.Phases, storm.Phase{Name: "straight from origin", Direct: true})
	}
	c.Phases = append(c.Phases, storm.Phase{Name: "through the ring (cold)"}, storm.Phase{Name: "through the ring (warm)"})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, workdir, keep, jsonOut, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ringcache-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c storm.Config, workdir string, keep bool, jsonOut string, out io.Writer) error {
	c.Dir = workdir
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "ringcache-demo")
		if err != nil {
			return err
		}
		c.Dir = d
		if !keep {
			defer os.RemoveAll(d)
		}
	}
	rs, err := storm.Run(ctx, c)
	if err != nil {
		return err
	}
	storm.Print(out, rs)
	if len(rs) >= 3 && rs[0].Name == "straight from origin" && rs[1].Seconds > 0 {
		fmt.Fprintf(out, "\nThrough the ring the %d readers finished %.1f× faster from cold (%.1f× warm) and pulled %.2f× the model from the origin instead of %.2f×.\n",
			rs[0].Readers, rs[0].Seconds/rs[1].Seconds, rs[0].Seconds/rs[2].Seconds,
			float64(rs[1].OriginBytes)/float64(rs[1].ModelBytes), float64(rs[0].OriginBytes)/float64(rs[0].ModelBytes))
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rs, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}
