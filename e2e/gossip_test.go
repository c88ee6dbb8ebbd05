package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/cluster"
	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

// startRogue runs an in-process gossip member that claims a big share of
// the ring (weight 8) at an address it chooses, keyed with key (nil: no
// encryption), and keeps trying to join seeds.
func startRogue(t *testing.T, id string, key []byte, seeds []string) *ring.Membership {
	t.Helper()
	o := ring.Options{
		Self:     ring.Member{ID: id, Addr: "127.0.0.1:1", Weight: ring.MaxWeight, PlacementVersion: 1},
		BindAddr: "127.0.0.1", Seeds: seeds, Profile: ring.ProfileLocal,
		RejoinInterval: 200 * time.Millisecond,
		Placement:      ring.Config{PartitionCount: 7919, Load: 1.25},
		Logger:         slog.New(slog.DiscardHandler),
	}
	if key != nil {
		o.SecretKeys = [][]byte{key}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := ring.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// TestGossipRefusesTokenHolders (Trust I finding 10): the cluster token is
// held by every mount and CSI plugin, so it must not let a process into the
// ring. Rogue members that hold the token, but not the cache nodes' gossip
// key, try to join three real cache nodes and claim partitions: a cachenode
// process started with the right --token-file and a gossip key of its own,
// an in-process member keyed with the key nodes used to derive from the
// token, and one without encryption. Every real node must keep exactly its
// three members, give the rogues no partition, and count the refused
// gossip.
func TestGossipRefusesTokenHolders(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	nodes, _ := startCluster(t, e)
	var seeds []string
	real := map[string]bool{}
	clients := map[string]*peer.Client{}
	for _, n := range nodes {
		seeds = append(seeds, n.gossipAddr)
		real[n.name] = true
		clients[n.name] = n.client(t)
	}

	// What any holder of the cluster token could compute before the fix.
	legacy := sha256.Sum256(append([]byte("ringcache gossip key\x00"), testToken...))
	rogues := []*ring.Membership{
		startRogue(t, "rogue-token-key", legacy[:], seeds),
		startRogue(t, "rogue-plaintext", nil, seeds),
	}
	otherKey, err := cluster.WriteGossipKeyFile(filepath.Join(t.TempDir(), "other-gossip-key"))
	if err != nil {
		t.Fatal(err)
	}
	rogueNode := e.startNode(t, "rogue-process", seeds, "--gossip-key-file", otherKey, "--weight", "8")

	// Wait for the event that proves the rogues tried: each real node has
	// counted refused gossip (the rogues retry every 200 ms). Meanwhile no
	// real node may ever show a rogue.
	const wantRefusals = 6
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for _, n := range nodes {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := clients[n.name].Status(sctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			var sum float64
			for _, m := range st.Members {
				sum += m.Share
				ids = append(ids, fmt.Sprintf("%s %s %.1f%%", m.Id, m.Addr, 100*m.Share))
				if !real[m.Id] {
					t.Fatalf("%s admitted rogue %s at %s into its ring: share %.1f%% (members %v)", n.name, m.Id, m.Addr, 100*m.Share, ids)
				}
			}
			if len(st.Members) != 3 || math.Abs(sum-1) > 1e-9 {
				t.Fatalf("%s: members %v (shares sum to %v), want the 3 cache nodes owning every partition", n.name, ids, sum)
			}
			if got := n.metric(t, "ringcache_gossip_refused_total", ""); got < wantRefusals {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s refused %v gossip messages", n.name, n.metric(t, "ringcache_gossip_refused_total", ""))
			}
			t.Fatalf("the real nodes did not count %d refused gossip messages each within 60s", wantRefusals)
		}
		time.Sleep(100 * time.Millisecond) // polls the nodes' Status and /metrics with a deadline
	}
	for _, r := range rogues {
		if got := r.View().Placement.Len(); got != 1 {
			t.Errorf("rogue %s sees %d members, want only itself", r.View().Self.ID, got)
		}
	}
	// The rogue process has the token, so it answers Status: a ring of one.
	st, err := rogueNode.client(t).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 1 {
		t.Errorf("rogue process sees %d members, want only itself", len(st.Members))
	}
	for _, n := range nodes {
		t.Logf("%s refused %v gossip messages (by reason: key %v, unencrypted %v)", n.name,
			n.metric(t, "ringcache_gossip_refused_total", ""),
			n.metric(t, "ringcache_gossip_refused_total", `reason="key"`),
			n.metric(t, "ringcache_gossip_refused_total", `reason="unencrypted"`))
		if got := n.metric(t, "ringcache_gossip_refused_total", `reason="unencrypted"`); got == 0 {
			t.Errorf("%s counted no unencrypted gossip, though rogue-plaintext kept trying", n.name)
		}
		if !strings.Contains(n.LogTail(1<<20), "gossip refused") {
			t.Errorf("%s did not log refused gossip", n.name)
		}
	}

	// The operator's view: cachenode status on every node.
	for _, n := range nodes {
		out, err := exec.Command(binDir+"/cachenode", "status", "--addr", n.peerAddr, "--token-file", e.token).CombinedOutput()
		if err != nil {
			t.Fatalf("cachenode status: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), ": 3 members,") || strings.Contains(string(out), "rogue") {
			t.Errorf("cachenode status of %s:\n%s", n.name, out)
		}
		for _, name := range slices.Sorted(maps.Keys(real)) {
			if !strings.Contains(string(out), name) {
				t.Errorf("cachenode status of %s does not list %s:\n%s", n.name, name, out)
			}
		}
	}
}
