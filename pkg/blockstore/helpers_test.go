package blockstore

import (
	"context"
	"errors"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// testOptions returns valid options for a store in a new temporary
// directory, logging to the test's output.
func testOptions(t testing.TB, capacity int64) Options {
	t.Helper()
	return Options{
		Dir:           t.TempDir(),
		CapacityBytes: capacity,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// openStore opens a store with o and closes it at the end of the test.
func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes s and opens a new store with o.
func reopen(t testing.TB, s *Store, o Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, o)
}

// testKey returns a JuiceFS-style key of block i.
func testKey(i int) Key {
	return Key{Volume: "0b1f3c52-9a8e-4d1e-8f7a-2c5d6e7f8a9b", Object: "chunks/0/1/" + strconv.Itoa(1000+i) + "_0_4194304"}
}

// blockData returns n bytes determined by k, so a reader can check bytes
// it got against the key it asked for.
func blockData(k Key, n int) []byte {
	seed := uint64(crc32.ChecksumIEEE([]byte(k.String())))
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func mustPut(t testing.TB, s *Store, k Key, data []byte, m Meta) {
	t.Helper()
	if err := s.Put(context.Background(), k, data, m); err != nil {
		t.Fatalf("Put(%s): %v", k, err)
	}
}

func mustGet(t testing.TB, s *Store, k Key) ([]byte, Meta) {
	t.Helper()
	b, m, err := s.Get(context.Background(), k, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return b, m
}

// blockFile returns the path of k's block file in s.
func blockFile(s *Store, k Key) string { return s.path(newBlockID(k)) }

func fileExists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat: %v", err)
	}
	return err == nil
}

// diskBlocks returns the names of the files under dir/blocks and dir/tmp.
func diskFiles(t testing.TB, dir string) (blocks, temps []string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, blocksDirName), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			blocks = append(blocks, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, tmpDirName))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		temps = append(temps, de.Name())
	}
	sort.Strings(blocks)
	return blocks, temps
}

// wrapsOnly reports whether every chain of err's wrapped errors ends in
// target.
func wrapsOnly(err, target error) bool {
	if err == target {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return u.Unwrap() != nil && wrapsOnly(u.Unwrap(), target)
	case interface{ Unwrap() []error }:
		errs := u.Unwrap()
		for _, e := range errs {
			if !wrapsOnly(e, target) {
				return false
			}
		}
		return len(errs) > 0
	}
	return false
}
