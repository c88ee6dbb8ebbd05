package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/pkg/blockkey"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

// startCluster starts three cache nodes seeded from the first and waits
// until every one sees all three.
func startCluster(t *testing.T, e *env) ([]*cacheNode, *ring.Placement) {
	t.Helper()
	n1 := e.startNode(t, "node-1", nil)
	n2 := e.startNode(t, "node-2", []string{n1.gossipAddr})
	n3 := e.startNode(t, "node-3", []string{n1.gossipAddr})
	nodes := []*cacheNode{n1, n2, n3}
	var p *ring.Placement
	for _, n := range nodes {
		p, _ = n.waitMembers(t, 3, 30*time.Second)
	}
	return nodes, p
}

func nodeByAddr(nodes []*cacheNode, addr string) *cacheNode {
	for _, n := range nodes {
		if n.peerAddr == addr {
			return n
		}
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestClusterServesVolume is the cache cluster's end-to-end test: three
// cache node processes in front of a JuiceFS volume on MinIO.
func TestClusterServesVolume(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, map[string][]byte{
		"/llama/model-00001-of-00002.safetensors": randomBytes(t, 9<<20+12345),
		"/llama/model-00002-of-00002.safetensors": randomBytes(t, 5<<20),
		"/llama/config.json":                      bytes.Repeat([]byte(`{"hidden_size": 4096, "num_layers": 32},`), 3000),
	})
	blocks := e.blocks(t)
	keys := sortedKeys(blocks)
	t.Logf("volume %s holds %d blocks", e.format.UUID, len(keys))

	nodes, p := startCluster(t, e)
	clients := map[string]*peer.Client{}
	for _, n := range nodes {
		clients[n.peerAddr] = n.client(t)
	}
	ctx := context.Background()

	t.Run("concurrent cold readers cause one origin fetch per block", func(t *testing.T) {
		e.proxy.Reset()
		var wg sync.WaitGroup
		errs := make(chan error, 16*len(keys))
		for _, k := range keys {
			owner := p.Owners(blockkey.Ring(e.format.UUID, k), 1)[0]
			c := clients[owner.Addr]
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					got, _, err := c.Read(rctx, "models", k, 0, -1)
					if err != nil {
						errs <- fmt.Errorf("read %s from owner %s: %w", k, owner.ID, err)
						return
					}
					if !bytes.Equal(got, blocks[k]) {
						errs <- fmt.Errorf("read %s from owner %s: bytes differ from the origin's", k, owner.ID)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, k := range keys {
			if n := e.originGets(k); n != 1 {
				t.Errorf("origin served %s %d times to 16 concurrent readers, want 1", k, n)
			}
		}
	})

	t.Run("every block through every node equals the origin's bytes", func(t *testing.T) {
		for _, n := range nodes {
			for _, k := range keys {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				got, info, err := clients[n.peerAddr].Read(rctx, e.format.UUID, k, 0, -1)
				cancel()
				if err != nil {
					t.Fatalf("read %s via %s: %v", k, n.name, err)
				}
				if !bytes.Equal(got, blocks[k]) {
					t.Fatalf("read %s via %s (%v): bytes differ from the origin's", k, n.name, info.Source)
				}
			}
		}
		// A range of a block, served from the store.
		k := keys[0]
		owner := p.Owners(blockkey.Ring(e.format.UUID, k), 1)[0]
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, info, err := clients[owner.Addr].Read(rctx, "models", k, 1000, 5000)
		if err != nil || !bytes.Equal(got, blocks[k][1000:6000]) || info.Source != peerpb.Source_SOURCE_STORE {
			t.Fatalf("range read: %d bytes, source %v, err %v; want bytes 1000..6000 from the store", len(got), info.Source, err)
		}
	})

	t.Run("bad requests get clear errors", func(t *testing.T) {
		c := clients[nodes[0].peerAddr]
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, _, err := c.Read(rctx, "no-such-volume", keys[0], 0, -1)
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `unknown volume "no-such-volume"`) {
			t.Errorf("unknown volume: got %v, want NotFound naming the volume", err)
		}
		_, _, err = c.Read(rctx, "models", "chunks/../../etc/passwd", 0, -1)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad key: got %v, want InvalidArgument", err)
		}
		_, _, err = c.Read(rctx, "models", keys[0], int64(len(blocks[keys[0]])+1), -1)
		if status.Code(err) != codes.OutOfRange {
			t.Errorf("offset past the end: got %v, want OutOfRange", err)
		}
	})

	t.Run("calls without the cluster token are refused", func(t *testing.T) {
		for name, opts := range map[string][]grpc.DialOption{
			"no token":    {grpc.WithTransportCredentials(insecure.NewCredentials())},
			"wrong token": {grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(peer.TokenCredentials([]byte("not-the-cluster-token")))},
		} {
			conn, err := grpc.NewClient(nodes[0].peerAddr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			stream, err := peerpb.NewPeerClient(conn).Read(rctx, &peerpb.ReadRequest{Volume: "models", Key: keys[0], Limit: -1})
			var chunk *peerpb.ReadChunk
			if err == nil {
				chunk, err = stream.Recv()
			}
			if status.Code(err) != codes.Unauthenticated || chunk != nil {
				t.Errorf("%s: got chunk %v, err %v; want Unauthenticated and no data", name, chunk != nil, err)
			}
			_, err = peerpb.NewPeerClient(conn).Status(rctx, &peerpb.StatusRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s: Status got %v, want Unauthenticated", name, err)
			}
			cancel()
			conn.Close()
		}
	})

	t.Run("a corrupt block file is dropped and refetched", func(t *testing.T) {
		k := keys[0]
		owner := nodeByAddr(nodes, p.Owners(blockkey.Ring(e.format.UUID, k), 1)[0].Addr)
		path := findBlockFile(t, owner.dataDir, k)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-100] ^= 0xff // a byte of block data
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		e.proxy.Reset()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, info, err := clients[owner.peerAddr].Read(rctx, "models", k, 0, -1)
		if err != nil || !bytes.Equal(got, blocks[k]) {
			t.Fatalf("read of corrupted block: err %v, bytes equal %v", err, bytes.Equal(got, blocks[k]))
		}
		if info.Source != peerpb.Source_SOURCE_ORIGIN || e.originGets(k) != 1 {
			t.Errorf("corrupted block: source %v, %d origin GETs; want a refetch from the origin", info.Source, e.originGets(k))
		}
		st, err := clients[owner.peerAddr].Status(rctx)
		if err != nil || st.CorruptBlocks < 1 {
			t.Errorf("status after corruption: corrupt_blocks %d, err %v; want >= 1", st.GetCorruptBlocks(), err)
		}
	})

	t.Run("a killed node leaves the ring and comes back with its blocks", func(t *testing.T) {
		victim := nodes[2]
		held := heldKeys(t, clients[victim.peerAddr], keys)
		if len(held) == 0 {
			t.Fatal("victim holds no blocks; the test would prove nothing")
		}
		victim.kill()
		killed := time.Now()
		_, took := nodes[0].waitMembers(t, 2, 30*time.Second)
		nodes[1].waitMembers(t, 2, 30*time.Second)
		t.Logf("failure detection: %v after SIGKILL (documented bound for the local profile: 10s)", time.Since(killed).Round(time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("dead node dropped after %v, documented bound is 10s", took)
		}

		e.proxy.Reset()
		victim.start()
		for _, n := range nodes {
			n.waitMembers(t, 3, 30*time.Second)
		}
		c := victim.client(t)
		for _, k := range held {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, info, err := c.Read(rctx, "models", k, 0, -1)
			cancel()
			if err != nil || !bytes.Equal(got, blocks[k]) {
				t.Fatalf("read %s after restart: err %v", k, err)
			}
			if info.Source != peerpb.Source_SOURCE_STORE {
				t.Errorf("%s after restart came from %v, want the store", k, info.Source)
			}
		}
		for _, k := range held {
			if n := e.originGets(k); n != 0 {
				t.Errorf("restarted node refetched %s from the origin %d times", k, n)
			}
		}
	})
}

// heldKeys returns the keys a node holds.
func heldKeys(t *testing.T, c *peer.Client, keys []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sizes, err := c.Has(ctx, "models", keys)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for i, s := range sizes {
		if s >= 0 {
			held = append(held, keys[i])
		}
	}
	return held
}

// findBlockFile finds the file holding key under a node's data dir by
// searching the files' contents for the key (block files hold their key).
func findBlockFile(t *testing.T, dataDir, key string) string {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Join(dataDir, "store"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		head := make([]byte, 4096)
		n, _ := f.Read(head)
		if bytes.Contains(head[:n], []byte(key)) {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no block file for %s under %s", key, dataDir)
	}
	return found
}

// TestNodeStopsGracefullyAndStatus: `cachenode status` shows the ring to a
// person, and a node stopped with SIGTERM leaves the ring at once and exits
// 0.
func TestNodeStopsGracefullyAndStatus(t *testing.T) {
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, map[string][]byte{"/m/a.bin": randomBytes(t, 5<<20)})
	nodes, _ := startCluster(t, e)

	out, err := exec.Command(filepath.Join(binDir, "cachenode"), "status", "--addr", nodes[0].peerAddr, "--token-file", e.token).CombinedOutput()
	if err != nil {
		t.Fatalf("cachenode status: %v\n%s", err, out)
	}
	for _, want := range []string{"Node node-1 at " + nodes[0].peerAddr, "3 members", "node-1 (this node)", "node-2", "node-3", "Store: ", "hit ratio", "models"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	bad, err := exec.Command(filepath.Join(binDir, "cachenode"), "status", "--addr", nodes[0].peerAddr, "--token-file", "/nonexistent").CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "read cluster token") {
		t.Errorf("status without a token file: err %v, output %s", err, bad)
	}

	start := time.Now()
	if code := nodes[2].Stop(); code != 0 {
		t.Errorf("SIGTERM: exit code %d, want 0", code)
	}
	_, took := nodes[0].waitMembers(t, 2, 10*time.Second)
	t.Logf("a node stopped with SIGTERM left the others' ring %v after the signal", time.Since(start).Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("graceful leave took %v to reach the others, want well under the failure-detection time", took)
	}
	if !strings.Contains(nodes[2].LogTail(4000), "cache node stopped") {
		t.Errorf("the stopped node did not log its shutdown:\n%s", nodes[2].LogTail(2000))
	}
}
