package peer

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkReadWarm4MiB reads one warm 4 MiB block over loopback gRPC:
// incompressible bytes (model weights), and compressible bytes (configs,
// tokenizers) with and without s2 on the wire.
func BenchmarkReadWarm4MiB(b *testing.B) {
	weights := randBytes(4 << 20)
	text := bytes.Repeat([]byte(`{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "vocab": "abcdefghijklmnopqrstuvwxyz"}`), 50000)[:4<<20]
	kw, kt := key(1, len(weights)), key(2, len(text))
	f := newFixture(b, map[string][]byte{kw: weights, kt: text}, nil)
	raw, err := Dial(f.addr, ClientOptions{Token: []byte(testToken)})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	for _, bc := range []struct {
		name string
		c    *Client
		key  string
	}{
		{"weights", f.client, kw},
		{"text-s2", f.client, kt},
		{"text-raw", raw, kt},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if _, _, err := bc.c.Read(ctx, "models", bc.key, 0, -1); err != nil { // warm it
				b.Fatal(err)
			}
			b.SetBytes(4 << 20)
			b.ResetTimer()
			var wire int64
			for range b.N {
				_, info, err := bc.c.Read(ctx, "models", bc.key, 0, -1)
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
	data := randBytes(4 << 20)
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
