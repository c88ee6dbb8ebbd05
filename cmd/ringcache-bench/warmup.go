package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
)

type warmupResult struct {
	ModelBytes    int64   `json:"model_bytes"`
	Blocks        int     `json:"blocks"`
	CapBytesPerS  int64   `json:"origin_cap_bytes_per_s"`
	LatencyMS     float64 `json:"origin_latency_ms"`
	Seconds       float64 `json:"seconds"`
	OriginBytes   int64   `json:"origin_bytes"`
	BytesPerS     float64 `json:"origin_bytes_per_s"`
	BlocksPerS    float64 `json:"blocks_per_s"`
	FractionOfCap float64 `json:"fraction_of_cap"`
}

// warmup measures a warm-up of a model against a throttled origin: blocks
// and bytes per second, and the share of the origin's bandwidth cap it
// uses. The warm-up runs as `cachenode warmup`, as an operator runs it.
func warmup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("warmup", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the cachenode and csi binaries")
	nodes := fs.Int("nodes", 3, "cache nodes")
	var size, capBW int64 = 512 << 20, 50 << 20
	fs.Var(bytesize.Value{N: &size}, "model-size", "model size (in 4 shards)")
	fs.Var(bytesize.Value{N: &capBW}, "origin-bandwidth", "origin bandwidth cap (bytes/s)")
	latency := fs.Duration("origin-latency", 20*time.Millisecond, "latency the origin adds to every request")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := deploy(ctx, *bin, size, *nodes)
	if err != nil {
		return err
	}
	defer d.close()
	env, ns, dir := d.env, d.nodes, d.dir
	binAbs := env.Bin
	urlFile := filepath.Join(dir, "meta-url")
	if err := os.WriteFile(urlFile, []byte(env.MetaURL), 0o600); err != nil {
		return err
	}
	env.Proxy.Throttle(*latency, capBW)
	env.Proxy.Reset()
	cmd := exec.CommandContext(ctx, filepath.Join(binAbs, "cachenode"), "warmup", "--addr", ns[0].PeerAddr,
		"--token-file", env.TokenFile, "--volume", "models", "--meta-url-file", urlFile, "--json", "/m")
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	secs := time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("cachenode warmup: %w\n%s", err, out)
	}
	var res struct {
		Progress struct {
			Blocks       int   `json:"blocks"`
			BlocksFailed int   `json:"blocks_failed"`
			Bytes        int64 `json:"bytes"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("parse warmup output: %w\n%s", err, out)
	}
	if res.Progress.BlocksFailed > 0 {
		return errors.New("the warm-up failed blocks")
	}
	r := warmupResult{ModelBytes: size, Blocks: res.Progress.Blocks, CapBytesPerS: capBW, LatencyMS: float64(latency.Milliseconds()),
		Seconds: secs, OriginBytes: env.Proxy.Bytes()}
	r.BytesPerS = float64(r.OriginBytes) / secs
	r.BlocksPerS = float64(r.Blocks) / secs
	r.FractionOfCap = r.BytesPerS / float64(capBW)
	fmt.Printf("warm-up of %s (%d blocks) against a %s/s origin with %v latency: %.1fs, %s from the origin, %.1f MB/s = %.0f%% of the cap, %.1f blocks/s\n",
		bytesize.Format(size), r.Blocks, bytesize.Format(capBW), *latency, secs, bytesize.Format(r.OriginBytes), r.BytesPerS/1e6, 100*r.FractionOfCap, r.BlocksPerS)
	return writeJSON(*jsonOut, r)
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
