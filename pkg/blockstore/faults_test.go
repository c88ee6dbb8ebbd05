package blockstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
)

func TestPutWriteFaults(t *testing.T) {
	tests := []struct {
		name        string
		fault       func(f *faults)
		wantErrs    []error
		wantNoSpace bool
	}{
		{name: "ENOSPC on write", fault: func(f *faults) { f.writeErr = syscall.ENOSPC }, wantErrs: []error{ErrNoSpace, syscall.ENOSPC}},
		{name: "EIO on write", fault: func(f *faults) { f.writeErr = syscall.EIO }, wantErrs: []error{syscall.EIO}},
		{name: "EIO on sync", fault: func(f *faults) { f.syncErr = syscall.EIO }, wantErrs: []error{syscall.EIO}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := newFaultFS()
			o := testOptions(t, 1000)
			o.FS = ffs
			s := openStore(t, o)
			k := testKey(1)
			data := blockData(k, 1000)

			ffs.set(tt.fault)
			err := s.Put(context.Background(), k, data, Meta{})
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Put error = %v, want %v", err, want)
				}
			}
			if errors.Is(err, ErrNoSpace) != slicesContains(tt.wantErrs, ErrNoSpace) {
				t.Errorf("Put error = %v: ErrNoSpace is %v", err, errors.Is(err, ErrNoSpace))
			}
			if _, ok := s.Has(k); ok {
				t.Error("Has after a failed Put")
			}
			if st := s.Stats(); st.WriteErrors != 1 || st.Puts != 0 || st.Blocks != 0 {
				t.Errorf("Stats = %+v, want 1 write error, nothing stored", st)
			}
			if blocks, temps := diskFiles(t, o.Dir); len(blocks)+len(temps) != 0 {
				t.Errorf("failed Put left files: %v %v", blocks, temps)
			}

			// The store is still usable, and the failed Put released its
			// reservation of the whole capacity.
			ffs.set(func(f *faults) { *f = faults{} })
			mustPut(t, s, k, data, Meta{})
			if got, _ := mustGet(t, s, k); !bytes.Equal(got, data) {
				t.Error("Get after recovery returned other bytes")
			}
		})
	}
}

func slicesContains(errs []error, target error) bool {
	for _, err := range errs {
		if err == target {
			return true
		}
	}
	return false
}

func TestGetReadError(t *testing.T) {
	ffs := newFaultFS()
	o := testOptions(t, 1<<20)
	o.FS = ffs
	s := openStore(t, o)
	k := testKey(1)
	data := blockData(k, 1000)
	mustPut(t, s, k, data, Meta{})

	ffs.set(func(f *faults) { f.readErr = syscall.EIO })
	got, _, err := s.Get(context.Background(), k, 0, -1)
	if !errors.Is(err, syscall.EIO) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) || got != nil {
		t.Fatalf("Get = %d bytes, error %v, want a wrapped EIO only", len(got), err)
	}
	if st := s.Stats(); st.ReadErrors != 1 || st.Corrupt != 0 || st.Hits != 0 || st.Blocks != 0 {
		t.Errorf("Stats = %+v, want 1 read error and the block dropped", st)
	}
	if _, ok := s.Has(k); ok {
		t.Error("unreadable block still in the index: a Put could not replace it")
	}

	ffs.set(func(f *faults) { *f = faults{} })
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("next Get error = %v, want ErrNotFound", err)
	}
	mustPut(t, s, k, data, Meta{})
	if got, _ := mustGet(t, s, k); !bytes.Equal(got, data) {
		t.Error("Get after recovery returned other bytes")
	}
}

func TestGetOpenErrorKeepsBlock(t *testing.T) {
	ffs := newFaultFS()
	o := testOptions(t, 1<<20)
	o.FS = ffs
	s := openStore(t, o)
	k := testKey(1)
	data := blockData(k, 1000)
	mustPut(t, s, k, data, Meta{})

	ffs.set(func(f *faults) { f.openErr = syscall.EMFILE })
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Get error = %v, want EMFILE", err)
	}
	if _, ok := s.Has(k); !ok {
		t.Error("block dropped for failing to open its file")
	}
	ffs.set(func(f *faults) { *f = faults{} })
	if got, _ := mustGet(t, s, k); !bytes.Equal(got, data) {
		t.Error("Get after recovery returned other bytes")
	}
	if st := s.Stats(); st.ReadErrors != 1 || st.Hits != 1 {
		t.Errorf("Stats = %+v, want 1 read error, 1 hit", st)
	}
}

func TestGetSurvivesConcurrentRemoval(t *testing.T) {
	for _, remove := range []string{"delete", "evict"} {
		t.Run(remove, func(t *testing.T) {
			ffs := newFaultFS()
			o := testOptions(t, 2000)
			o.FS = ffs
			s := openStore(t, o)
			k := testKey(1)
			data := blockData(k, 1000)
			mustPut(t, s, k, data, Meta{})

			// Remove the block between Get's open and its reads.
			var once sync.Once
			ffs.set(func(f *faults) {
				f.onOpen = func(string) {
					once.Do(func() {
						var err error
						switch remove {
						case "delete":
							err = s.Delete(context.Background(), k)
						case "evict":
							k2 := testKey(2)
							err = s.Put(context.Background(), k2, blockData(k2, 2000), Meta{})
						}
						if err != nil {
							t.Error(err)
						}
					})
				}
			})
			got, _, err := s.Get(context.Background(), k, 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %d bytes, %v, want the block's bytes", len(got), err)
			}
			if _, ok := s.Has(k); ok || fileExists(t, blockFile(s, k)) {
				t.Error("block not removed")
			}
		})
	}
}
