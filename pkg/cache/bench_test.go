package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/peertest"
	"github.com/ringcache/ringcache/pkg/peer"
)

// The in-process serving benchmarks: a real peer server (pkg/peer) over
// a real cache (this package) and block store (pkg/blockstore), one node
// of internal/peertest, so a warm read is what a cache node does: read
// the block from the store, check its CRC, and send it, with s2 only for
// blocks the cache stored as compressible.

// BenchmarkReadWarm4MiB reads one warm 4 MiB block over loopback gRPC:
// incompressible bytes (model weights), and compressible bytes (configs,
// tokenizers) with and without s2 on the wire.
func BenchmarkReadWarm4MiB(b *testing.B) {
	weights := make([]byte, 4<<20)
	rand.Read(weights)
	text := bytes.Repeat([]byte(`{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "vocab": "abcdefghijklmnopqrstuvwxyz"}`), 50000)[:4<<20]
	blockKey := func(id, size int) string { return fmt.Sprintf("chunks/0/%d/%d_0_%d", id/1000, id, size) }
	kw, kt := blockKey(1, len(weights)), blockKey(2, len(text))
	pc := peertest.Start(b, peertest.Options{Nodes: 1, Grace: time.Second})
	pc.Origin.Put(kw, weights)
	pc.Origin.Put(kt, text)
	n := pc.Nodes[0]
	raw, err := peer.Dial(n.Addr, peer.ClientOptions{Token: []byte(pc.O.Token)})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	for _, bc := range []struct {
		name string
		c    *peer.Client
		key  string
	}{
		{"weights", n.Client, kw},
		{"text-s2", n.Client, kt},
		{"text-raw", raw, kt},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if _, _, err := bc.c.Read(ctx, pc.O.Volume, bc.key, 0, -1); err != nil { // warm it
				b.Fatal(err)
			}
			b.SetBytes(4 << 20)
			b.ResetTimer()
			var wire int64
			for range b.N {
				_, info, err := bc.c.Read(ctx, pc.O.Volume, bc.key, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				wire += info.WireBytes
			}
			b.ReportMetric(float64(wire)/float64(b.N)/(4<<20), "wire/byte")
		})
	}
}

// BenchmarkTCPCopy4MiB is the baseline: 4 MiB written by one goroutine
// and read by another over a loopback TCP connection, request by request.
func BenchmarkTCPCopy4MiB(b *testing.B) {
	data := make([]byte, 4<<20)
	rand.Read(data)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(data); err != nil {
				return
			}
		}
	}()
	c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4<<20)
	b.SetBytes(4 << 20)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
