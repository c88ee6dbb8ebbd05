package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/storm"
)

func stormConfig(fs *flag.FlagSet) (*storm.Config, *string) {
	c := &storm.Config{Nodes: 3, Readers: 8, Shards: 4, ShardSize: 256 << 20, Bandwidth: 100 << 20, Latency: 20 * time.Millisecond, Log: os.Stderr}
	fs.StringVar(&c.Bin, "bin", "bin", "directory with the cachenode and csi binaries")
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "cache nodes (K)")
	fs.IntVar(&c.Readers, "readers", c.Readers, "concurrent readers (N), each a FUSE mount")
	fs.IntVar(&c.Shards, "shards", c.Shards, "weight shards")
	fs.Var(bytesize.Value{N: &c.ShardSize}, "shard-size", "bytes per shard (the model is shards × this plus ~2 MiB of configs)")
	fs.Var(bytesize.Value{N: &c.Bandwidth}, "origin-bandwidth", "origin bandwidth cap (bytes/s)")
	fs.DurationVar(&c.Latency, "origin-latency", c.Latency, "latency added to every origin request")
	return c, fs.String("json", "", "write results as JSON to this file")
}

func runStorm(ctx context.Context, c *storm.Config) ([]storm.Result, error) {
	dir, err := os.MkdirTemp("", "ringcache-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c.Dir = dir
	return storm.Run(ctx, *c)
}

// stormBench: N readers of one model through K nodes from a cold and a warm
// ring, against N readers straight from the throttled origin.
func stormBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	c, jsonOut := stormConfig(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Phases = []storm.Phase{{Name: "straight from origin", Direct: true}, {Name: "ring, cold"}, {Name: "ring, warm"}}
	rs, err := runStorm(ctx, c)
	if err != nil {
		return err
	}
	storm.Print(os.Stdout, rs)
	return writeJSON(*jsonOut, rs)
}

// failoverBench: read latency percentiles during a warm storm in which one
// cache node is killed, against the same storm without the kill.
func failoverBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	c, jsonOut := stormConfig(fs)
	fs.DurationVar(&c.KillAfter, "kill-after", 500*time.Millisecond, "kill the node this long into the storm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Phases = []storm.Phase{{Name: "warm-up read"}, {Name: "warm storm"}, {Name: "warm storm, a node killed", Kill: true}, {Name: "warm storm again (after the kill)"}}
	rs, err := runStorm(ctx, c)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\ttime\tp50 ms\tp99 ms\tmax ms\tfallbacks\thedges\tpulled from origin\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2fs\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%s\t\n", r.Name, r.Seconds, r.P50ms, r.P99ms, r.MaxMs, r.Fallbacks, r.Hedges, bytesize.Format(r.OriginBytes))
	}
	tw.Flush()
	return writeJSON(*jsonOut, rs)
}
