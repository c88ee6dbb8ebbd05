package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/ringcache/ringcache/pkg/ring"
)

type ringResult struct {
	Members     int     `json:"members"`
	JoinMoved   float64 `json:"join_moved_fraction"`
	LeaveMoved  float64 `json:"leave_moved_fraction"`
	Ideal       float64 `json:"ideal_fraction"`
	JoinRatio   float64 `json:"join_moved_vs_ideal"`
	LeaveRatio  float64 `json:"leave_moved_vs_ideal"`
	MaxOverMean float64 `json:"max_over_mean_load"`
	MinOverMean float64 `json:"min_over_mean_load"`
	LoadBound   float64 `json:"load_bound"`
}

// ringBench measures placement: keys whose primary owner changes on one
// join and on one leave, against the ideal 1/N, and the spread of keys
// across members, for several ring sizes. It is pure computation.
func ringBench(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("ring", flag.ContinueOnError)
	keys := fs.Int("keys", 100000, "keys placed")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	members := func(n int) []ring.Member {
		ms := make([]ring.Member, n)
		for i := range ms {
			ms[i] = ring.Member{ID: "node-" + strconv.Itoa(i), Addr: fmt.Sprintf("10.0.%d.%d:9700", i/250, i%250+1), Weight: 1, PlacementVersion: 1}
		}
		return ms
	}
	owners := func(p *ring.Placement) []string {
		out := make([]string, *keys)
		for i := range out {
			out[i] = p.Owners("vol/chunks/0/0/"+strconv.Itoa(i)+"_0_4194304", 1)[0].ID
		}
		return out
	}
	moved := func(a, b []string) float64 {
		n := 0
		for i := range a {
			if a[i] != b[i] {
				n++
			}
		}
		return float64(n) / float64(len(a))
	}
	var rs []ringResult
	for _, n := range []int{3, 8, 32, 100} {
		cfg := ring.Config{}
		base, err := ring.NewPlacement(cfg, members(n))
		if err != nil {
			return err
		}
		joined, err := ring.NewPlacement(cfg, members(n+1))
		if err != nil {
			return err
		}
		left, err := ring.NewPlacement(cfg, members(n)[1:])
		if err != nil {
			return err
		}
		b := owners(base)
		r := ringResult{Members: n, JoinMoved: moved(b, owners(joined)), LeaveMoved: moved(b, owners(left)), LoadBound: base.Config().Load}
		r.Ideal = 1 / float64(n)
		r.JoinRatio, r.LeaveRatio = r.JoinMoved/(1/float64(n+1)), r.LeaveMoved/r.Ideal
		count := map[string]int{}
		for _, o := range b {
			count[o]++
		}
		mean := float64(*keys) / float64(n)
		r.MinOverMean = 1e9
		for _, m := range members(n) {
			f := float64(count[m.ID]) / mean
			r.MaxOverMean = max(r.MaxOverMean, f)
			r.MinOverMean = min(r.MinOverMean, f)
		}
		rs = append(rs, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "members\tmoved on join (× ideal)\tmoved on leave (× ideal)\tmax/mean keys\tmin/mean keys\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%.3f (%.2f×)\t%.3f (%.2f×)\t%.2f\t%.2f\t\n", r.Members, r.JoinMoved, r.JoinRatio, r.LeaveMoved, r.LeaveRatio, r.MaxOverMean, r.MinOverMean)
	}
	tw.Flush()
	return writeJSON(*jsonOut, rs)
}
