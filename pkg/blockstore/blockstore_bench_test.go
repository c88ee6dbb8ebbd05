package blockstore

import (
	"context"
	"log/slog"
	"testing"
)

func benchStore(b *testing.B, capacity int64) (*Store, Options) {
	b.Helper()
	o := Options{Dir: b.TempDir(), CapacityBytes: capacity, Logger: slog.New(slog.DiscardHandler)}
	return openStore(b, o), o
}

func BenchmarkGet4MiB(b *testing.B) {
	s, _ := benchStore(b, 1<<30)
	k := testKey(1)
	mustPut(b, s, k, blockData(k, 4<<20), Meta{})
	ctx := context.Background()
	b.SetBytes(4 << 20)
	for b.Loop() {
		if _, _, err := s.Get(ctx, k, 0, -1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRange64KiB(b *testing.B) {
	s, _ := benchStore(b, 1<<30)
	k := testKey(1)
	mustPut(b, s, k, blockData(k, 4<<20), Meta{})
	ctx := context.Background()
	b.SetBytes(64 << 10)
	off := int64(0)
	for b.Loop() {
		if _, _, err := s.Get(ctx, k, off, 64<<10); err != nil {
			b.Fatal(err)
		}
		off = (off + 64<<10) % (4 << 20)
	}
}

func BenchmarkPut4MiB(b *testing.B) {
	// 64 blocks of capacity: steady state includes an eviction per Put.
	s, _ := benchStore(b, 64*4<<20)
	data := blockData(testKey(0), 4<<20)
	ctx := context.Background()
	b.SetBytes(4 << 20)
	i := 0
	for b.Loop() {
		i++
		if err := s.Put(ctx, testKey(i), data, Meta{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenRebuild(b *testing.B) {
	const blocks = 2000
	s, o := benchStore(b, 1<<30)
	data := blockData(testKey(0), 4<<10)
	for i := range blocks {
		mustPut(b, s, testKey(i), data, Meta{})
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		s, err := Open(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		if n := s.Stats().Blocks; n != blocks {
			b.Fatalf("rebuilt %d blocks, want %d", n, blocks)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/blocks, "µs/block")
}
