package blockstore

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
)

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	s := openStore(t, testOptions(t, 3000))
	a, b, c, d, e := testKey(1), testKey(2), testKey(3), testKey(4), testKey(5)
	put := func(k Key) { mustPut(t, s, k, blockData(k, 1000), Meta{}) }
	wantStored := func(stored, evicted []Key) {
		t.Helper()
		for _, k := range stored {
			if _, ok := s.Has(k); !ok {
				t.Errorf("%s was evicted", k)
			}
		}
		for _, k := range evicted {
			if _, ok := s.Has(k); ok {
				t.Errorf("%s was not evicted", k)
			}
			if fileExists(t, blockFile(s, k)) {
				t.Errorf("file of evicted %s still exists", k)
			}
		}
	}

	put(a)
	put(b)
	put(c)
	mustGet(t, s, a) // LRU order, most recent first: a c b
	put(d)           // evicts b: d a c
	wantStored([]Key{a, c, d}, []Key{b})

	s.Has(c)                      // not a use
	mustPut(t, s, a, nil, Meta{}) // a Put of a stored block is a use: a d c
	put(e)                        // evicts c: e a d
	wantStored([]Key{a, d, e}, []Key{b, c})

	if st := s.Stats(); st.Evictions != 2 || st.Blocks != 3 || st.Bytes != 3000 {
		t.Errorf("Stats = %+v, want 2 evictions, 3 blocks of 3000 bytes", st)
	}
}

func TestFreeSpaceFloor(t *testing.T) {
	const (
		size     = 1000
		minFree  = 10_000
		diskSize = size + fixedHeaderSize + 36 + 25 // the file size of a testKey block
	)
	if k := testKey(1); fixedHeaderSize+len(k.Volume)+len(k.Object)+size != diskSize {
		t.Fatalf("diskSize is wrong for %s", k)
	}
	tests := []struct {
		name string
		// avail returns the disk's available bytes given the store's.
		avail       func(stored int64) int64
		wantErr     error
		wantEvicted int // of the 3 blocks stored first, least recently used first
	}{
		{name: "room", avail: func(stored int64) int64 { return 1 << 40 }},
		{name: "exactly room", avail: func(stored int64) int64 { return minFree + 4*diskSize - stored }},
		{name: "one block short", avail: func(stored int64) int64 { return minFree + 3*diskSize - stored }, wantEvicted: 1},
		{name: "two blocks short", avail: func(stored int64) int64 { return minFree + 3*diskSize - 1 - stored }, wantEvicted: 2},
		{name: "evicting cannot help", avail: func(stored int64) int64 { return minFree - stored }, wantErr: ErrNoSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := newFaultFS()
			o := testOptions(t, 1<<20)
			o.FS = ffs
			o.MinFreeBytes = minFree
			s := openStore(t, o)
			var keys []Key
			for i := range 3 {
				keys = append(keys, testKey(i))
				mustPut(t, s, keys[i], blockData(keys[i], size), Meta{})
			}
			ffs.set(func(f *faults) {
				f.statFS = func() (DiskUsage, error) {
					return DiskUsage{AvailBytes: tt.avail(s.Stats().DiskBytes), TotalBytes: 1 << 40}, nil
				}
			})
			k := testKey(10)
			err := s.Put(context.Background(), k, blockData(k, size), Meta{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			if _, ok := s.Has(k); ok != (err == nil) {
				t.Errorf("Has = %v after Put error %v", ok, err)
			}
			for i, k := range keys {
				if _, ok := s.Has(k); ok != (i >= tt.wantEvicted) {
					t.Errorf("block %d: Has = %v, want %d least recently used blocks evicted", i, ok, tt.wantEvicted)
				}
			}
			if st := s.Stats(); st.Evictions != int64(tt.wantEvicted) {
				t.Errorf("Evictions = %d, want %d", st.Evictions, tt.wantEvicted)
			}
		})
	}
}

func TestFreeSpaceStatError(t *testing.T) {
	ffs := newFaultFS()
	o := testOptions(t, 1<<20)
	o.FS = ffs
	o.MinFreeBytes = 1
	s := openStore(t, o)
	ffs.set(func(f *faults) {
		f.statFS = func() (DiskUsage, error) { return DiskUsage{}, syscall.EIO }
	})
	if err := s.Put(context.Background(), testKey(1), []byte("x"), Meta{}); !errors.Is(err, syscall.EIO) {
		t.Errorf("Put error = %v, want EIO", err)
	}
	ffs.set(func(f *faults) { f.statFS = nil })
	mustPut(t, s, testKey(1), []byte("x"), Meta{})
}

func TestCapacityHeldByConcurrentWrites(t *testing.T) {
	// Two Puts of a whole capacity each: they run one after the other or
	// one fails with ErrNoSpace, but the store never holds both.
	for range 20 {
		s := openStore(t, testOptions(t, 1000))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				errs[i] = s.Put(context.Background(), testKey(i), blockData(testKey(i), 1000), Meta{})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Put: %v", err)
			}
		}
		if st := s.Stats(); st.Bytes != 1000 || st.Blocks != 1 {
			t.Fatalf("Stats = %+v, want one block of 1000 bytes", st)
		}
	}
}
