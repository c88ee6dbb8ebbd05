package prefetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// hasBatch is the most keys of one Has call of Check and DryRun.
const hasBatch = 1024

// CheckResult tells how much of a plan is held where readers look for it:
// on each block's first Replicas owners in the current placement.
type CheckResult struct {
	Volume     string `json:"volume"`
	VolumeUUID string `json:"volume_uuid"`
	Replicas   int    `json:"replicas"`
	Members    int    `json:"members"`

	Files  int   `json:"files"`
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"`

	// CachedBlocks are the blocks held by every one of their owners.
	CachedBlocks int   `json:"cached_blocks"`
	CachedBytes  int64 `json:"cached_bytes"`
	// MissingBlocks are the others: the blocks a warm-up would complete.
	MissingBlocks int   `json:"missing_blocks"`
	MissingBytes  int64 `json:"missing_bytes"`
	// FetchBlocks are the (block, owner) pairs where the owner lacks the
	// block: the origin fetches a warm-up would make, each replica
	// counted. They equal MissingBlocks when Replicas is 1.
	FetchBlocks int   `json:"fetch_blocks"`
	FetchBytes  int64 `json:"fetch_bytes"`
	// Percent is CachedBytes of Bytes (100 for an empty plan).
	Percent float64 `json:"percent"`

	Nodes   []NodeReport `json:"nodes"`    // every ring member, by ID
	PerFile []FileReport `json:"per_file"` // by path
	// Unreachable are owners that did not answer: their blocks count as
	// not held.
	Unreachable []NodeError `json:"unreachable"`
}

// NodeReport is one ring member's part of a plan.
type NodeReport struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// Blocks are the plan's blocks this node is one of the owners of.
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"`
	// CachedBlocks of them it holds.
	CachedBlocks int   `json:"cached_blocks"`
	CachedBytes  int64 `json:"cached_bytes"`
	// FetchBlocks of them it lacks: a warm-up would fetch them here.
	FetchBlocks int   `json:"fetch_blocks"`
	FetchBytes  int64 `json:"fetch_bytes"`
}

// FileReport is how much of one file is cached.
type FileReport struct {
	Path         string  `json:"path"`
	Size         int64   `json:"size"`
	Blocks       int     `json:"blocks"`
	Bytes        int64   `json:"bytes"` // of its blocks
	CachedBlocks int     `json:"cached_blocks"`
	CachedBytes  int64   `json:"cached_bytes"`
	Percent      float64 `json:"percent"` // CachedBytes of Bytes; 100 for a file without blocks
}

// NodeError is a node that failed a call.
type NodeError struct {
	Addr  string `json:"addr"`
	Error string `json:"error"`
}

// DryRunResult is what a warm-up of a plan would do, and whether the ring
// has room for it.
type DryRunResult struct {
	CheckResult
	// CapacityBytes, UsedBytes and FreeBytes are summed over the members
	// that answered Status: block store capacity, bytes held, and
	// capacity minus bytes held.
	CapacityBytes int64 `json:"capacity_bytes"`
	UsedBytes     int64 `json:"used_bytes"`
	FreeBytes     int64 `json:"free_bytes"`
	// Fits is true when FetchBytes fits the ring's free capacity and each
	// owner's share fits its own, so the warm-up evicts nothing.
	Fits bool `json:"fits"`
	// NodeFits are the members' shares of the fetches against their free
	// capacity, by ID.
	NodeFits []NodeFit `json:"node_fits"`
}

// NodeFit is one member's share of a warm-up against its free capacity.
type NodeFit struct {
	ID            string `json:"id"`
	Addr          string `json:"addr"`
	FetchBytes    int64  `json:"fetch_bytes"`
	CapacityBytes int64  `json:"capacity_bytes"`
	UsedBytes     int64  `json:"used_bytes"`
	FreeBytes     int64  `json:"free_bytes"`
	Fits          bool   `json:"fits"`
	Error         string `json:"error,omitempty"` // Status failed: free counts as 0
}

// Check asks each block's owners whether they hold it (Has) and reports how
// much of the plan is cached, per node and per file.
func (e *Executor) Check(ctx context.Context, plan *Plan) (*CheckResult, error) {
	if plan == nil {
		return nil, errors.New("prefetch: nil plan")
	}
	view, err := e.placement(ctx)
	if err != nil {
		return nil, fmt.Errorf("prefetch: learn the ring: %w", err)
	}
	return e.survey(ctx, plan, view)
}

// DryRun reports what a warm-up of plan would fetch (the blocks not yet on
// their owners) and whether it fits the ring's free capacity (from each
// member's Status), overall and per owner. It changes nothing.
func (e *Executor) DryRun(ctx context.Context, plan *Plan) (*DryRunResult, error) {
	if plan == nil {
		return nil, errors.New("prefetch: nil plan")
	}
	view, err := e.placement(ctx)
	if err != nil {
		return nil, fmt.Errorf("prefetch: learn the ring: %w", err)
	}
	c, err := e.survey(ctx, plan, view)
	if err != nil {
		return nil, err
	}
	d := &DryRunResult{CheckResult: *c, Fits: true}
	members := view.Members()
	fits := make([]NodeFit, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := NodeFit{ID: m.ID, Addr: m.Addr}
			n, err := e.ring.Node(m.Addr)
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, e.o.CallTimeout)
				st, serr := n.Status(cctx)
				cancel()
				if err = serr; err == nil {
					f.CapacityBytes, f.UsedBytes = st.StoreCapacityBytes, st.StoreBytes
					f.FreeBytes = max(f.CapacityBytes-f.UsedBytes, 0)
				}
			}
			if err != nil {
				f.Error = err.Error()
			}
			fits[i] = f
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fetch := map[string]int64{}
	for _, n := range c.Nodes {
		fetch[n.Addr] = n.FetchBytes
	}
	for i := range fits {
		f := &fits[i]
		f.FetchBytes = fetch[f.Addr]
		f.Fits = f.FetchBytes <= f.FreeBytes
		d.Fits = d.Fits && f.Fits
		d.CapacityBytes += f.CapacityBytes
		d.UsedBytes += f.UsedBytes
		d.FreeBytes += f.FreeBytes
	}
	d.Fits = d.Fits && d.FetchBytes <= d.FreeBytes
	d.NodeFits = fits
	return d, nil
}

// survey asks every owner which of its blocks of plan it holds.
func (e *Executor) survey(ctx context.Context, plan *Plan, view *ring.Placement) (*CheckResult, error) {
	members := view.Members()
	memberIdx := make(map[string]int, len(members))
	c := &CheckResult{
		Volume: plan.Volume, VolumeUUID: plan.VolumeUUID, Replicas: e.o.Replicas, Members: len(members),
		Files: len(plan.Files), Nodes: make([]NodeReport, len(members)),
		PerFile: make([]FileReport, 0, len(plan.Files)), Unreachable: []NodeError{},
	}
	for i, m := range members {
		memberIdx[m.Addr] = i
		c.Nodes[i] = NodeReport{ID: m.ID, Addr: m.Addr}
	}

	// Distinct blocks, their owners, and per owner the (block, slot)
	// pairs to ask about.
	type ref struct{ block, slot int }
	var (
		keys    []string
		sizes   []int64
		owners  [][]string
		held    [][]bool
		byOwner = map[string][]ref{}
		index   = map[string]int{}
	)
	for _, b := range plan.Blocks {
		if _, dup := index[b.Key]; dup {
			continue
		}
		i := len(keys)
		index[b.Key] = i
		ows := ownerAddrs(view, blockkey.Ring(plan.VolumeUUID, b.Key), e.o.Replicas)
		keys, sizes, owners = append(keys, b.Key), append(sizes, b.Size), append(owners, ows)
		held = append(held, make([]bool, len(ows)))
		for s, a := range ows {
			byOwner[a] = append(byOwner[a], ref{i, s})
		}
	}

	var (
		mu          sync.Mutex
		unreachable = map[string]string{}
		wg          sync.WaitGroup
	)
	fail := func(addr string, err error) {
		mu.Lock()
		unreachable[addr] = err.Error()
		mu.Unlock()
	}
	for addr, refs := range byOwner {
		n, err := e.ring.Node(addr)
		if err != nil {
			fail(addr, err)
			continue
		}
		wg.Add(1)
		go func() { // one owner: its batches, Concurrency at a time
			defer wg.Done()
			var owg sync.WaitGroup
			sem := make(chan struct{}, e.o.Concurrency)
			for start := 0; start < len(refs); start += hasBatch {
				part := refs[start:min(start+hasBatch, len(refs))]
				sem <- struct{}{}
				owg.Add(1)
				go func() {
					defer func() { <-sem; owg.Done() }()
					ks := make([]string, len(part))
					for j, r := range part {
						ks[j] = keys[r.block]
					}
					cctx, cancel := context.WithTimeout(ctx, e.o.CallTimeout)
					got, err := n.Has(cctx, plan.VolumeUUID, ks)
					cancel()
					if err == nil && len(got) != len(ks) {
						err = fmt.Errorf("%w: %d sizes for %d keys", peer.ErrProtocol, len(got), len(ks))
					}
					if err != nil {
						fail(addr, err)
						return
					}
					for j, r := range part {
						held[r.block][r.slot] = got[j] >= 0 // distinct elements per goroutine
					}
				}()
			}
			owg.Wait()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for addr, msg := range unreachable {
		c.Unreachable = append(c.Unreachable, NodeError{Addr: addr, Error: msg})
	}
	slices.SortFunc(c.Unreachable, func(a, b NodeError) int { return strings.Compare(a.Addr, b.Addr) })

	cached := make(map[string]bool, len(keys))
	for i, k := range keys {
		c.Blocks++
		c.Bytes += sizes[i]
		all := true
		for s, a := range owners[i] {
			nr := &c.Nodes[memberIdx[a]]
			nr.Blocks++
			nr.Bytes += sizes[i]
			if held[i][s] {
				nr.CachedBlocks++
				nr.CachedBytes += sizes[i]
			} else {
				all = false
				nr.FetchBlocks++
				nr.FetchBytes += sizes[i]
				c.FetchBlocks++
				c.FetchBytes += sizes[i]
			}
		}
		if all {
			cached[k] = true
			c.CachedBlocks++
			c.CachedBytes += sizes[i]
		} else {
			c.MissingBlocks++
			c.MissingBytes += sizes[i]
		}
	}
	c.Percent = percent(c.CachedBytes, c.Bytes)
	for _, f := range plan.Files {
		fr := FileReport{Path: f.Path, Size: f.Size}
		seen := map[string]bool{}
		for _, b := range f.Blocks {
			if seen[b.Key] {
				continue
			}
			seen[b.Key] = true
			fr.Blocks++
			fr.Bytes += b.Size
			if cached[b.Key] {
				fr.CachedBlocks++
				fr.CachedBytes += b.Size
			}
		}
		fr.Percent = percent(fr.CachedBytes, fr.Bytes)
		c.PerFile = append(c.PerFile, fr)
	}
	return c, nil
}

func percent(part, whole int64) float64 {
	if whole <= 0 {
		return 100
	}
	return 100 * float64(part) / float64(whole)
}
