package blockstore

import (
	"context"
	"errors"
	"os"
	"testing"
)

func TestGetCorruptBlock(t *testing.T) {
	k := testKey(1)
	const size = 3 * readChunkSize // ranged Gets checksum chunked prefixes and suffixes
	hdr := int64(fixedHeaderSize + len(k.Volume) + len(k.Object))
	flip := func(off int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[off] ^= 0x01
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	truncate := func(size int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name       string
		corrupt    func(t *testing.T, path string)
		off, limit int64
	}{
		{name: "first data byte", corrupt: flip(hdr), limit: -1},
		{name: "last data byte", corrupt: flip(hdr + size - 1), limit: -1},
		{name: "data byte before range", corrupt: flip(hdr + 10), off: 2 * readChunkSize, limit: 100},
		{name: "data byte after range", corrupt: flip(hdr + size - 1), off: 0, limit: 100},
		{name: "magic", corrupt: flip(0), limit: -1},
		{name: "flags", corrupt: flip(6), limit: -1},
		{name: "data length", corrupt: flip(8), limit: -1},
		{name: "data checksum", corrupt: flip(16), limit: -1},
		{name: "key", corrupt: flip(fixedHeaderSize + 3), limit: -1},
		{name: "header checksum", corrupt: flip(28), limit: -1},
		{name: "truncated by one byte", corrupt: truncate(hdr + size - 1), limit: -1},
		{name: "truncated in range", corrupt: truncate(hdr + 10), limit: 5},
		{name: "truncated in header", corrupt: truncate(10), limit: -1},
		{name: "empty", corrupt: truncate(0), limit: -1},
		{name: "extended", corrupt: truncate(hdr + size + 1), limit: -1},
		{name: "other block's file", corrupt: func(t *testing.T, path string) {
			// A valid file of another key, as a hash collision would leave.
			o := testOptions(t, 1<<20)
			other := openStore(t, o)
			k2 := testKey(2)
			mustPut(t, other, k2, blockData(k2, size), Meta{})
			b, err := os.ReadFile(blockFile(other, k2))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, limit: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, testOptions(t, 1<<20))
			mustPut(t, s, k, blockData(k, size), Meta{})
			path := blockFile(s, k)
			tt.corrupt(t, path)

			got, _, err := s.Get(context.Background(), k, tt.off, tt.limit)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get = %d bytes, error %v, want ErrCorrupt", len(got), err)
			}
			if got != nil {
				t.Errorf("Get returned %d bytes with ErrCorrupt", len(got))
			}
			if !wrapsOnly(err, ErrCorrupt) {
				t.Errorf("error %v wraps more than ErrCorrupt", err)
			}
			if fileExists(t, path) {
				t.Error("corrupt block file not removed")
			}
			if _, ok := s.Has(k); ok {
				t.Error("corrupt block still in the index")
			}
			if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
				t.Errorf("next Get error = %v, want ErrNotFound", err)
			}
			if st := s.Stats(); st.Corrupt != 1 || st.Blocks != 0 || st.Bytes != 0 || st.ReadErrors != 0 {
				t.Errorf("Stats = %+v, want 1 corrupt, nothing stored", st)
			}
			// The store still works for the key.
			mustPut(t, s, k, blockData(k, size), Meta{})
			mustGet(t, s, k)
		})
	}
}

func TestGetFileRemovedBehindBack(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	mustPut(t, s, k, []byte("data"), Meta{})
	if err := os.Remove(blockFile(s, k)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get error = %v, want ErrNotFound", err)
	}
	if _, ok := s.Has(k); ok {
		t.Error("vanished block still in the index")
	}
	if st := s.Stats(); st.Misses != 1 || st.Corrupt != 0 || st.ReadErrors != 0 || st.Bytes != 0 {
		t.Errorf("Stats = %+v, want 1 miss and nothing stored", st)
	}
}
