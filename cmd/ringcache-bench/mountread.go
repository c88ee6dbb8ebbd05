package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cluster"
)

// variant is one way of mounting the model.
type variant struct {
	Name   string   `json:"name"`
	Direct bool     `json:"direct"`
	Args   []string `json:"args"`
	// Seconds of each round's full read, in round order.
	Seconds []float64 `json:"seconds"`
	MBs     float64   `json:"median_mb_s"`
	slug    string    // names its mounts' directories
}

// mountRead measures a full sequential read of a warm model through one
// mount, for several mount configurations, interleaved round by round so
// the machine's noise falls on all of them alike.
func mountRead(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mount-read", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the cachenode and csi binaries")
	nodes := fs.Int("nodes", 3, "cache nodes")
	rounds := fs.Int("rounds", 5, "rounds; each reads the model once per variant")
	var size int64 = 512 << 20
	fs.Var(bytesize.Value{N: &size}, "model-size", "model size (in 4 shards)")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("FUSE mounts need root")
	}
	d, err := deploy(ctx, *bin, size, *nodes)
	if err != nil {
		return err
	}
	defer d.close()
	env, ns, dir := d.env, d.nodes, d.dir
	cacheDir := filepath.Join(dir, "local-cache")
	// The names say what JuiceFS runs with: `csi mount` passes --prefetch
	// (default 1) only with a local cache (--cache-size > 0); without one
	// JuiceFS would turn it off anyway (docs/mount.md).
	vs := []*variant{
		{Name: "ring: no local cache, buffer 1024 MiB, no prefetch (mount defaults)"},
		{Name: "ring: no local cache, buffer 300 MiB (JuiceFS's default), no prefetch (--prefetch=1 dropped)", Args: []string{"--buffer-size=300", "--prefetch=1"}},
		{Name: "ring: no local cache, buffer 1024 MiB, no prefetch (--prefetch=2 dropped: the defaults again)", Args: []string{"--prefetch=2"}},
		{Name: "ring: 1 GiB local disk cache, buffer 1024 MiB, prefetch 1", Args: []string{"--cache-size=1024", "--cache-dir=" + filepath.Join(dir, "ring-cache")}},
		{Name: "stock JuiceFS, model in its local disk cache (baseline)", Direct: true, Args: []string{"--cache-size=" + fmt.Sprint(2*size>>20), "--cache-dir=" + cacheDir}},
	}
	for i, v := range vs {
		// Numbered: names may share their first 40 characters.
		slug := strings.NewReplacer(" ", "-", ":", "", ",", "", "(", "", ")", "", "/", "", "'", "", "=", "").Replace(v.Name)
		v.slug = fmt.Sprintf("v%d-%s", i+1, slug[:min(len(slug), 40)])
	}
	// Warm the ring and the baseline's local cache.
	for _, v := range vs {
		m, err := mountVariant(env, ns[0], v, "warm")
		if err != nil {
			return err
		}
		_, err = readAll(ctx, m.Dir)
		m.Unmount()
		if err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // JuiceFS writes its disk cache asynchronously
	for r := range *rounds {
		for _, v := range vs {
			m, err := mountVariant(env, ns[r%len(ns)], v, fmt.Sprint(r))
			if err != nil {
				return err
			}
			d, err := readAll(ctx, m.Dir)
			m.Unmount()
			if err != nil {
				return err
			}
			v.Seconds = append(v.Seconds, d.Seconds())
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "variant\tmedian MB/s\tvs. baseline\trounds (s)\t\n")
	base := vs[len(vs)-1]
	for _, v := range vs {
		v.MBs = float64(size) / median(v.Seconds) / 1e6
	}
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%v\t\n", v.Name, v.MBs, v.MBs/base.MBs, round2(v.Seconds))
	}
	tw.Flush()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"model_bytes": size, "nodes": *nodes, "variants": vs}, "", "  ")
		return os.WriteFile(*jsonOut, b, 0o644)
	}
	return nil
}

func mountVariant(env *cluster.Env, n *cluster.Node, v *variant, round string) (*cluster.Mount, error) {
	o := cluster.MountOptions{Subdir: "/m", Direct: v.Direct, Args: v.Args}
	if !v.Direct {
		o.Node = n
	}
	return env.Mount(fmt.Sprintf("%s-%s", v.slug, round), o)
}

// readAll reads every file under dir (JuiceFS's internal files excepted)
// and returns how long it took.
func readAll(ctx context.Context, dir string) (time.Duration, error) {
	start := time.Now()
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Dir(p) == dir && cluster.JuiceFSInternal[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(io.Discard, f, buf)
		return err
	})
	return time.Since(start), err
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func round2(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(int(x*100+0.5)) / 100
	}
	return out
}
