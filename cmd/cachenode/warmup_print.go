package main

// The printers of "cachenode warmup": what it says on stdout and stderr
// about a plan, a run, a check and a dry run. Every name from the volume
// goes through termSafe.

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/pkg/prefetch"
)

// printResolution shows where paths led through symlinks, one
// "/models/m/latest -> /models/m/v2" line each, and warns of the symlinks
// skipped in the trees.
func printResolution(w io.Writer, plan *prefetch.Plan) {
	// Every name printed comes from the volume: termSafe keeps escape
	// sequences in it off the terminal.
	for _, r := range plan.Resolved {
		if r.Followed() {
			fmt.Fprintf(w, "%s -> %s\n", termSafe(r.Path), termSafe(r.Resolved))
		}
	}
	if plan.SkippedLinks == 0 {
		return
	}
	what := fmt.Sprintf("%d symlinks", plan.SkippedLinks)
	if plan.SkippedLinks == 1 {
		what = "1 symlink"
	}
	fmt.Fprintf(w, "warning: %s skipped (symlinks are followed only into the tree warmed; these lead out of it, dangle or loop):\n", what)
	const maxShown = 10
	for i, s := range plan.Skipped {
		if i == maxShown {
			break
		}
		fmt.Fprintf(w, "  %s -> %s: %s\n", termSafe(s.Link), termSafe(s.Target), termSafe(s.Reason))
	}
	if n := plan.SkippedLinks - min(len(plan.Skipped), maxShown); n > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", n)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printResult(w io.Writer, plan *prefetch.Plan, r *prefetch.Result) {
	fmt.Fprintf(w, "Warmed volume %s: %d of %d blocks (%s of %s), %d of %d files, in %s (%s/s)\n",
		plan.Volume, r.BlocksDone, r.Blocks, bytesize.Format(r.BytesDone), bytesize.Format(r.Bytes),
		r.FilesDone, r.Files, r.Elapsed.Round(time.Millisecond), bytesize.Format(int64(r.Rate)))
	fmt.Fprintf(w, "  fetched from the origin: %d blocks (%s origin bytes)\n", r.BlocksFetched, bytesize.Format(r.OriginBytes))
	fmt.Fprintf(w, "  already cached:          %d blocks\n", r.BlocksCached)
	fmt.Fprintf(w, "  failed:                  %d blocks (%s)\n", r.BlocksFailed, bytesize.Format(r.BytesFailed))
	const maxShown = 20
	for i, fb := range r.Failed {
		if i == maxShown {
			fmt.Fprintf(w, "  ... and %d more failed blocks\n", len(r.Failed)-maxShown)
			break
		}
		fmt.Fprintf(w, "  FAILED %s (%s) after %d failed attempts: %s\n", fb.Key, bytesize.Format(fb.Size), fb.Attempts, fb.Error)
	}
}

func printCheck(w io.Writer, c *prefetch.CheckResult) {
	fmt.Fprintf(w, "Volume %s (%s): %d files, %d blocks, %s; %d ring members, replicas %d\n",
		c.Volume, c.VolumeUUID, c.Files, c.Blocks, bytesize.Format(c.Bytes), c.Members, c.Replicas)
	fmt.Fprintf(w, "Cached on their owners: %d of %d blocks, %s of %s (%.1f%%)\n",
		c.CachedBlocks, c.Blocks, bytesize.Format(c.CachedBytes), bytesize.Format(c.Bytes), c.Percent)
	fmt.Fprintf(w, "Missing: %d blocks, %s (%d origin fetches, %s, counting every replica)\n",
		c.MissingBlocks, bytesize.Format(c.MissingBytes), c.FetchBlocks, bytesize.Format(c.FetchBytes))
	printUnreachable(w, c.Unreachable)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tOWNS\tCACHED\tMISSING\t")
	for _, n := range c.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d (%s)\t%d (%s)\t%d (%s)\t\n", n.ID, n.Addr, n.Blocks, bytesize.Format(n.Bytes),
			n.CachedBlocks, bytesize.Format(n.CachedBytes), n.FetchBlocks, bytesize.Format(n.FetchBytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSIZE\tBLOCKS\tCACHED\t")
	for _, f := range c.PerFile {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%.1f%%\t\n", termSafe(f.Path), bytesize.Format(f.Size), f.CachedBlocks, f.Blocks, f.Percent)
	}
	tw.Flush()
}

func printDryRun(w io.Writer, d *prefetch.DryRunResult) {
	fmt.Fprintf(w, "Volume %s (%s): %d files, %d blocks, %s; %d ring members, replicas %d\n",
		d.Volume, d.VolumeUUID, d.Files, d.Blocks, bytesize.Format(d.Bytes), d.Members, d.Replicas)
	fmt.Fprintf(w, "Already cached: %d blocks, %s\n", d.CachedBlocks, bytesize.Format(d.CachedBytes))
	fmt.Fprintf(w, "A warm-up would fetch %d blocks, %s (%d origin fetches, %s, counting every replica)\n",
		d.MissingBlocks, bytesize.Format(d.MissingBytes), d.FetchBlocks, bytesize.Format(d.FetchBytes))
	verdict := "fits"
	if !d.Fits {
		verdict = "does NOT fit (blocks would be evicted)"
	}
	fmt.Fprintf(w, "Ring capacity %s, used %s, free %s: %s\n",
		bytesize.Format(d.CapacityBytes), bytesize.Format(d.UsedBytes), bytesize.Format(d.FreeBytes), verdict)
	printUnreachable(w, d.Unreachable)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tFETCH\tFREE\tFITS\t")
	for _, n := range d.NodeFits {
		fits := "yes"
		if !n.Fits {
			fits = "no"
		}
		if n.Error != "" {
			fits += " (status: " + n.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", n.ID, n.Addr, bytesize.Format(n.FetchBytes), bytesize.Format(n.FreeBytes), fits)
	}
	tw.Flush()
}

func printUnreachable(w io.Writer, us []prefetch.NodeError) {
	for _, u := range us {
		fmt.Fprintf(w, "Unreachable owner %s (its blocks count as missing): %s\n", u.Addr, u.Error)
	}
}
