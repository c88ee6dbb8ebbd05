package prefetch

import (
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/clock"
)

// TestCheckAndDryRunHalfWarm: one of two files is warm; Check and DryRun
// report the numbers of the warm and the cold half, per node and per file.
func TestCheckAndDryRunHalfWarm(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	plan := c.plan(1, map[string]int{"/m/a": 12, "/m/b": 8}, 1000)
	r := newTestRing(c, clock.Real())
	e := newExecutor(t, Options{Ring: r, ViewRefresh: -1})
	if res, err := e.Run(ctx30s(t), subPlan(plan, "/m/a")); err != nil || res.BlocksDone != 12 {
		t.Fatalf("warm /m/a: %+v, %v", res, err)
	}
	c.origin.Reset()

	ck, err := e.Check(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Blocks != 20 || ck.Bytes != 20_000 || ck.CachedBlocks != 12 || ck.CachedBytes != 12_000 ||
		ck.MissingBlocks != 8 || ck.MissingBytes != 8_000 || ck.FetchBlocks != 8 || ck.FetchBytes != 8_000 ||
		ck.Percent != 60 || ck.Files != 2 || ck.Members != 3 || len(ck.Unreachable) != 0 {
		t.Errorf("check = %+v", ck)
	}
	if len(ck.PerFile) != 2 || ck.PerFile[0].Path != "/m/a" || ck.PerFile[0].Percent != 100 || ck.PerFile[0].CachedBlocks != 12 ||
		ck.PerFile[1].Path != "/m/b" || ck.PerFile[1].Percent != 0 || ck.PerFile[1].Blocks != 8 || ck.PerFile[1].Bytes != 8000 {
		t.Errorf("per file = %+v", ck.PerFile)
	}
	// Per node: what it owns and holds, from the placement.
	for i, n := range c.nodes {
		var want NodeReport
		want.ID, want.Addr = n.member.ID, n.member.Addr
		for fi, f := range plan.Files {
			for _, b := range f.Blocks {
				if owners(c.full, b.Key, 1)[0] != n.member.Addr {
					continue
				}
				want.Blocks++
				want.Bytes += b.Size
				if fi == 0 {
					want.CachedBlocks++
					want.CachedBytes += b.Size
				} else {
					want.FetchBlocks++
					want.FetchBytes += b.Size
				}
			}
		}
		if ck.Nodes[i] != want {
			t.Errorf("node %d: %+v, want %+v", i, ck.Nodes[i], want)
		}
	}

	dr, err := e.DryRun(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if dr.MissingBlocks != 8 || dr.FetchBytes != 8_000 || dr.CapacityBytes != 3<<30 || dr.UsedBytes != 12_000 ||
		dr.FreeBytes != 3<<30-12_000 || !dr.Fits || len(dr.NodeFits) != 3 {
		t.Errorf("dry run = %+v", dr)
	}
	for i, f := range dr.NodeFits {
		if f.FetchBytes != ck.Nodes[i].FetchBytes || f.UsedBytes != ck.Nodes[i].CachedBytes || f.CapacityBytes != 1<<30 || !f.Fits || f.Error != "" {
			t.Errorf("node fit %d = %+v", i, f)
		}
	}

	// With two replicas, the warm half lacks its second copies too.
	e2 := newExecutor(t, Options{Ring: r, Replicas: 2, ViewRefresh: -1})
	ck2, err := e2.Check(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if ck2.CachedBlocks != 0 || ck2.MissingBlocks != 20 || ck2.FetchBlocks != 12+2*8 || ck2.FetchBytes != 28_000 {
		t.Errorf("check with 2 replicas = %+v", ck2)
	}
	if c.origin.Total() != 0 {
		t.Errorf("check and dry run caused %d origin GETs", c.origin.Total())
	}

	// A dead owner is reported; its blocks count as missing.
	c.nodes[2].stop()
	ck3, err := e.Check(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(ck3.Unreachable) != 1 || ck3.Unreachable[0].Addr != c.nodes[2].member.Addr || ck3.CachedBlocks != 12-ck.Nodes[2].CachedBlocks {
		t.Errorf("check with a dead owner = %+v", ck3)
	}
	dr3, err := e.DryRun(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if dr3.NodeFits[2].Error == "" || dr3.NodeFits[2].FreeBytes != 0 || dr3.Fits {
		t.Errorf("dry run with a dead owner = %+v", dr3)
	}
}

// TestDryRunDoesNotFit: a plan larger than the ring's free capacity.
func TestDryRunDoesNotFit(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2, capacity: 10_000})
	plan := c.plan(1, map[string]int{"/big": 30}, 1000) // 30 kB for 20 kB of capacity
	e := newExecutor(t, Options{Ring: newTestRing(c, clock.Real()), ViewRefresh: -1})
	dr, err := e.DryRun(ctx30s(t), plan)
	if err != nil {
		t.Fatal(err)
	}
	if dr.Fits || dr.FreeBytes != 20_000 || dr.FetchBytes != 30_000 {
		t.Errorf("dry run = %+v", dr)
	}
	over := 0
	for _, f := range dr.NodeFits {
		if !f.Fits {
			over++
			if f.FetchBytes <= f.FreeBytes {
				t.Errorf("node fit %+v marked as not fitting", f)
			}
		}
	}
	if over == 0 {
		t.Errorf("no owner is over its capacity: %+v", dr.NodeFits)
	}
	if c.origin.Total() != 0 {
		t.Error("a dry run fetched from the origin")
	}
}

func TestClusterRing(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 3})
	if _, err := NewClusterRing([]byte("short"), "a:1"); err == nil {
		t.Error("short token accepted")
	}
	if _, err := NewClusterRing([]byte(testToken)); err == nil {
		t.Error("no seeds accepted")
	}
	cr, err := NewClusterRing([]byte(testToken), "127.0.0.1:1", c.nodes[0].member.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	p, err := cr.Placement(ctx30s(t))
	if err != nil {
		t.Fatal(err)
	}
	// The ring parameters come from Status too.
	if p.Len() != 3 || p.Config().PartitionCount != 271 {
		t.Errorf("placement of %d members, %d partitions", p.Len(), p.Config().PartitionCount)
	}
	if !samePlacement(p, c.full) {
		t.Error("placement from Status differs from the cluster's")
	}
	// The seeds die: the members it saw answer.
	c.nodes[0].stop()
	if _, err := cr.Placement(ctx30s(t)); err != nil {
		t.Errorf("with the seed dead: %v", err)
	}
	n1, _ := cr.Node(c.nodes[1].member.Addr)
	n2, _ := cr.Node(c.nodes[1].member.Addr)
	if n1 != n2 {
		t.Error("Node dialed twice")
	}
	c.nodes[1].stop()
	c.nodes[2].stop()
	if _, err := cr.Placement(ctx30s(t)); err == nil || !strings.Contains(err.Error(), "status of") {
		t.Errorf("with every node dead: %v", err)
	}
}
