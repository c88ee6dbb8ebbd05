package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ringcache/ringcache/pkg/clock/clocktest"
)

func TestRestartKeepsBlocksAndMeta(t *testing.T) {
	o := testOptions(t, 64<<20)
	s := openStore(t, o)
	blocks := map[Key]struct {
		data []byte
		meta Meta
	}{}
	keys := []Key{
		testKey(1),
		testKey(2),
		{Volume: "0b1f3c52-9a8e-4d1e-8f7a-2c5d6e7f8a9b", Object: "chunks/A3/1/1234_0_4194304"}, // hash-prefixed
		{Volume: "another-volume", Object: testKey(1).Object},                                  // same object, other volume
		{Object: "no-volume"},
	}
	for i, k := range keys {
		b := struct {
			data []byte
			meta Meta
		}{blockData(k, i*1000), Meta{Compressible: i%2 == 0}}
		blocks[k] = b
		mustPut(t, s, k, b.data, b.meta)
	}
	before := s.Stats()

	s = reopen(t, s, o)
	after := s.Stats()
	if after.Blocks != before.Blocks || after.Bytes != before.Bytes || after.DiskBytes != before.DiskBytes || after.Dropped != 0 {
		t.Errorf("Stats after restart = %+v, before %+v", after, before)
	}
	for k, b := range blocks {
		if size, ok := s.Has(k); !ok || size != int64(len(b.data)) {
			t.Errorf("Has(%s) = %d, %v, want %d, true", k, size, ok, len(b.data))
		}
		data, m := mustGet(t, s, k)
		if !bytes.Equal(data, b.data) || m != b.meta {
			t.Errorf("Get(%s) = %d bytes, %+v, want %d bytes, %+v", k, len(data), m, len(b.data), b.meta)
		}
	}
}

func TestRestartKeepsLRUOrder(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	o := testOptions(t, 3000)
	o.Clock = clock
	s := openStore(t, o)
	a, b, c, d := testKey(1), testKey(2), testKey(3), testKey(4)
	for _, k := range []Key{a, b, c} {
		mustPut(t, s, k, blockData(k, 1000), Meta{})
		clock.Advance(time.Minute)
	}
	clock.Advance(10 * time.Minute)
	mustGet(t, s, a) // a is now the most recently used, b the least

	s = reopen(t, s, o)
	mustPut(t, s, d, blockData(d, 1000), Meta{})
	if _, ok := s.Has(b); ok {
		t.Error("b, the least recently used block before the restart, was not evicted")
	}
	for _, k := range []Key{a, c, d} {
		if _, ok := s.Has(k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
}

func TestRebuildDropsInvalidFiles(t *testing.T) {
	o := testOptions(t, 1<<20)
	s := openStore(t, o)
	var keys []Key
	for i := range 7 {
		k := testKey(i)
		keys = append(keys, k)
		mustPut(t, s, k, blockData(k, 1000), Meta{})
	}
	good, badHeader, truncated, misnamed, badData, extended, empty := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
	edit := func(k Key, fn func(b []byte) []byte) {
		path := blockFile(s, k)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fn(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit(badHeader, func(b []byte) []byte { b[fixedHeaderSize+1] ^= 0x80; return b })
	edit(truncated, func(b []byte) []byte { return b[:len(b)-1] })
	edit(extended, func(b []byte) []byte { return append(b, 0) })
	edit(empty, func(b []byte) []byte { return nil })
	edit(badData, func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }) // only Get notices
	// A valid file under another key's name.
	other := Key{Volume: "v", Object: "misnamed"}
	misnamedPath := s.path(newBlockID(other))
	if err := os.MkdirAll(filepath.Dir(misnamedPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(blockFile(s, misnamed), misnamedPath); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crash and strangers.
	tmp := filepath.Join(o.Dir, tmpDirName, newBlockID(good).String()+".123")
	stray := filepath.Join(filepath.Dir(blockFile(s, good)), "stray")
	for _, name := range []string{tmp, stray} {
		if err := os.WriteFile(name, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s = reopen(t, s, o)
	if st := s.Stats(); st.Blocks != 2 || st.Dropped != 6 {
		t.Errorf("Stats = %+v, want 2 blocks, 6 files dropped", st)
	}
	for _, k := range []Key{badHeader, truncated, extended, empty} {
		if _, ok := s.Has(k); ok {
			t.Errorf("invalid block %s was loaded", k)
		}
		if fileExists(t, blockFile(s, k)) {
			t.Errorf("invalid block file of %s was not removed", k)
		}
	}
	for _, path := range []string{misnamedPath, tmp, stray} {
		if fileExists(t, path) {
			t.Errorf("%s was not removed", path)
		}
	}
	if _, ok := s.Has(other); ok {
		t.Error("misnamed block was loaded")
	}
	if got, _ := mustGet(t, s, good); !bytes.Equal(got, blockData(good, 1000)) {
		t.Error("good block changed across the restart")
	}
	if _, _, err := s.Get(context.Background(), badData, 0, -1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of the block with bad data error = %v, want ErrCorrupt", err)
	}
	blocks, temps := diskFiles(t, o.Dir)
	if want := []string{newBlockID(good).String()}; !slices.Equal(blocks, want) || len(temps) != 0 {
		t.Errorf("files left: blocks %v, temps %v, want blocks %v", blocks, temps, want)
	}
}

func TestOpenEvictsOverCapacity(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	o := testOptions(t, 3000)
	o.Clock = clock
	s := openStore(t, o)
	for i := range 3 {
		mustPut(t, s, testKey(i), blockData(testKey(i), 1000), Meta{})
		clock.Advance(time.Minute)
	}
	o.CapacityBytes = 2000
	s = reopen(t, s, o)
	if st := s.Stats(); st.Blocks != 2 || st.Bytes != 2000 || st.Evictions != 1 {
		t.Errorf("Stats = %+v, want 2 blocks of 2000 bytes, 1 eviction", st)
	}
	if _, ok := s.Has(testKey(0)); ok || fileExists(t, blockFile(s, testKey(0))) {
		t.Error("oldest block not evicted")
	}
}
