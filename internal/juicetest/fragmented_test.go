package juicetest

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestFragmentedPasses(t *testing.T) {
	const size = 72 << 20
	a, err := FragmentedPasses(7555, size)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FragmentedPasses(7555, size)
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d passes", len(a), len(b))
	}
	for i := range a {
		if a[i].Off != b[i].Off || a[i].Truncate != b[i].Truncate || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("same seed: pass %d differs: %v and %v", i, a[i], b[i])
		}
	}
	// Slices per chunk (a pass touching a chunk adds one), writes across
	// the chunk boundary and truncates.
	perChunk := map[int64]int{}
	crossing, truncates := 0, 0
	for _, p := range a {
		if p.Truncate {
			truncates++
			continue
		}
		first, last := p.Off/ChunkSize, (p.Off+int64(len(p.Data))-1)/ChunkSize
		for c := first; c <= last; c++ {
			perChunk[c]++
		}
		if first != last {
			crossing++
		}
		if end := p.Off + int64(len(p.Data)); end > size {
			t.Errorf("pass %v ends at %d, past the file size %d", p, end, size)
		}
	}
	for c, n := range perChunk {
		if n >= 99 {
			t.Errorf("chunk %d gets %d slices: a read-write client compacts at 99", c, n)
		}
	}
	if perChunk[0] < 50 || crossing < 3 || truncates != 2 {
		t.Errorf("chunk 0 gets %d slices, %d writes cross the boundary, %d truncates: want >= 50, >= 3, 2", perChunk[0], crossing, truncates)
	}
	got, err := ApplyPasses(filepath.Join(t.TempDir(), "f"), a)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Fatalf("local file: %d bytes, want %d", len(got), size)
	}
	// The sparse hole and the tail after the truncate up read as zeros,
	// but for the few random overwrites that land there.
	zeros := func(b []byte) int { return bytes.Count(b, []byte{0}) }
	if n := zeros(got[56<<20 : 60<<20]); n < 3<<20 {
		t.Errorf("the hole [56 MiB, 60 MiB) holds %d zero bytes, want most of it", n)
	}
	if n := zeros(got[size-1<<20:]); n < 768<<10 {
		t.Errorf("the last MiB holds %d zero bytes, want most of it (truncated up)", n)
	}
	if _, err := FragmentedPasses(1, ChunkSize); err == nil {
		t.Error("a file of one chunk was accepted")
	}
}
