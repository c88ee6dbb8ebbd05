package blockstore

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestConcurrentPutSameKey(t *testing.T) {
	o := testOptions(t, 1<<20)
	s := openStore(t, o)
	k := testKey(1)
	data := blockData(k, 64<<10)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := s.Put(context.Background(), k, bytes.Clone(data), Meta{Compressible: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Puts != 1 || st.Blocks != 1 || st.Bytes != int64(len(data)) {
		t.Errorf("Stats = %+v, want the block written once", st)
	}
	if got, m := mustGet(t, s, k); !bytes.Equal(got, data) || !m.Compressible {
		t.Error("Get returned other bytes")
	}
	blocks, temps := diskFiles(t, o.Dir)
	if len(blocks) != 1 || len(temps) != 0 {
		t.Errorf("files: blocks %v, temps %v, want one block", blocks, temps)
	}
}

// TestConcurrentReadersWriters runs Puts, Gets and Deletes of a few keys
// in parallel with a capacity that keeps evicting, checks that every Get
// returns the right bytes or a miss, and that the index matches the files
// on disk at the end.
func TestConcurrentReadersWriters(t *testing.T) {
	const (
		keys    = 24
		workers = 8
		ops     = 300
		maxSize = 32 << 10
	)
	o := testOptions(t, 6*maxSize)
	o.Logger = nil // evictions would flood the test log
	s := openStore(t, o)
	size := func(i int) int { return maxSize/2 + i*(maxSize/2)/keys }

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0))
			ctx := context.Background()
			for range ops {
				i := r.IntN(keys)
				k := testKey(i)
				data := blockData(k, size(i))
				switch op := r.IntN(10); {
				case op < 4:
					if err := s.Put(ctx, k, data, Meta{Compressible: i%2 == 0}); err != nil && !errors.Is(err, ErrNoSpace) {
						t.Errorf("Put(%s): %v", k, err)
					}
				case op < 9:
					off := r.Int64N(int64(len(data)) + 1)
					limit := r.Int64N(int64(len(data))+10) - 5
					got, m, err := s.Get(ctx, k, off, limit)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						t.Errorf("Get(%s, %d, %d): %v", k, off, limit, err)
						continue
					}
					want := data[off:]
					if limit >= 0 && limit < int64(len(want)) {
						want = want[:limit]
					}
					if !bytes.Equal(got, want) || m.Compressible != (i%2 == 0) {
						t.Errorf("Get(%s, %d, %d) returned wrong bytes or meta", k, off, limit)
					}
				default:
					if err := s.Delete(ctx, k); err != nil {
						t.Errorf("Delete(%s): %v", k, err)
					}
				}
			}
		})
	}
	wg.Wait()

	st := s.Stats()
	if st.Corrupt != 0 || st.ReadErrors != 0 || st.WriteErrors != 0 {
		t.Errorf("Stats = %+v, want no corrupt blocks or I/O errors", st)
	}
	if st.Bytes > o.CapacityBytes || st.Hits == 0 || st.Evictions == 0 {
		t.Errorf("Stats = %+v, want hits, evictions and bytes within capacity", st)
	}
	var want []string
	for i := range keys {
		if _, ok := s.Has(testKey(i)); ok {
			want = append(want, newBlockID(testKey(i)).String())
		}
	}
	slices.Sort(want)
	blocks, temps := diskFiles(t, o.Dir)
	if !slices.Equal(blocks, want) || len(temps) != 0 {
		t.Errorf("files on disk %v (temps %v), index has %v", blocks, temps, want)
	}
	s = reopen(t, s, o)
	if st2 := s.Stats(); st2.Blocks != st.Blocks || st2.Bytes != st.Bytes || st2.Dropped != 0 {
		t.Errorf("Stats after restart = %+v, before %+v", st2, st)
	}
}

func TestConcurrentGetsOfOneBlock(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	data := blockData(k, 300<<10)
	mustPut(t, s, k, data, Meta{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				off := int64((w*20 + i) * 1000)
				got, _, err := s.Get(context.Background(), k, off, 5000)
				if err != nil || !bytes.Equal(got, data[off:off+5000]) {
					t.Errorf("Get(%d): %v", off, err)
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Hits != 160 {
		t.Errorf("Hits = %d, want 160", st.Hits)
	}
}
