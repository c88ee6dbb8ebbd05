package blockstore

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestPutGetRanges(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	data := blockData(k, 1000)
	mustPut(t, s, k, data, Meta{Compressible: true})

	tests := []struct {
		name       string
		off, limit int64
		want       []byte
		wantErr    error
	}{
		{name: "whole", off: 0, limit: -1, want: data},
		{name: "whole with exact limit", off: 0, limit: 1000, want: data},
		{name: "middle", off: 100, limit: 200, want: data[100:300]},
		{name: "tail", off: 990, limit: -1, want: data[990:]},
		{name: "limit past end is clamped", off: 900, limit: 500, want: data[900:]},
		{name: "zero limit", off: 10, limit: 0, want: []byte{}},
		{name: "offset at end", off: 1000, limit: -1, want: []byte{}},
		{name: "offset past end", off: 1001, limit: -1, wantErr: ErrRange},
		{name: "offset far past end", off: 1 << 40, limit: 10, wantErr: ErrRange},
		{name: "negative offset", off: -1, limit: 10, wantErr: ErrInvalidRange},
		{name: "limit below -1", off: 0, limit: -2, wantErr: ErrInvalidRange},
		{name: "end overflows int64", off: 1, limit: math.MaxInt64, want: data[1:]},
		{name: "max offset and limit", off: math.MaxInt64, limit: math.MaxInt64, wantErr: ErrRange},
		{name: "min offset", off: math.MinInt64, limit: math.MaxInt64, wantErr: ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, m, err := s.Get(context.Background(), k, tt.off, tt.limit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get(%d, %d) error = %v, want %v", tt.off, tt.limit, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%d, %d): %v", tt.off, tt.limit, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Get(%d, %d) = %d bytes, want %d bytes %x...", tt.off, tt.limit, len(got), len(tt.want), tt.want[:min(len(tt.want), 8)])
			}
			if !m.Compressible {
				t.Errorf("Meta = %+v, want Compressible", m)
			}
		})
	}
	if _, ok := s.Has(k); !ok {
		t.Error("bad ranges dropped the block")
	}
}

func TestPutGetSizes(t *testing.T) {
	s := openStore(t, testOptions(t, 64<<20))
	for i, n := range []int{0, 1, readChunkSize - 1, readChunkSize + 1, 4 << 20} {
		k := testKey(i)
		data := blockData(k, n)
		mustPut(t, s, k, data, Meta{})
		if size, ok := s.Has(k); !ok || size != int64(n) {
			t.Errorf("Has = %d, %v, want %d, true", size, ok, n)
		}
		got, m := mustGet(t, s, k)
		if !bytes.Equal(got, data) || m.Compressible {
			t.Errorf("size %d: Get = %d bytes, %+v, want the %d bytes put, no Compressible", n, len(got), m, n)
		}
		// A range in the middle checksums a prefix and a suffix.
		if n > 2 {
			got, _, err := s.Get(context.Background(), k, 1, int64(n-2))
			if err != nil || !bytes.Equal(got, data[1:n-1]) {
				t.Errorf("size %d: Get(1, %d) = %d bytes, %v", n, n-2, len(got), err)
			}
		}
	}
}

func TestGetMiss(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	mustPut(t, s, testKey(1), []byte("x"), Meta{})
	for _, k := range []Key{testKey(2), {Volume: "other", Object: testKey(1).Object}, {}} {
		if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) error = %v, want ErrNotFound", k, err)
		}
	}
	if st := s.Stats(); st.Misses != 3 || st.Hits != 0 {
		t.Errorf("Stats = %+v, want 3 misses, 0 hits", st)
	}
}

func TestPutIdempotent(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	first := blockData(k, 100)
	mustPut(t, s, k, first, Meta{Compressible: true})
	mustPut(t, s, k, []byte("different"), Meta{})
	mustPut(t, s, k, first, Meta{Compressible: true})
	got, m := mustGet(t, s, k)
	if !bytes.Equal(got, first) || !m.Compressible {
		t.Errorf("Get = %q, %+v, want the first Put's block", got, m)
	}
	if st := s.Stats(); st.Puts != 1 || st.Blocks != 1 || st.Bytes != 100 {
		t.Errorf("Stats = %+v, want 1 put, 1 block of 100 bytes", st)
	}
}

func TestPutCopiesData(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	data := blockData(k, 100)
	buf := bytes.Clone(data)
	mustPut(t, s, k, buf, Meta{})
	clear(buf)
	if got, _ := mustGet(t, s, k); !bytes.Equal(got, data) {
		t.Error("Get returned the caller's reused buffer, not the data put")
	}
}

func TestPutRefused(t *testing.T) {
	o := testOptions(t, 10_000)
	o.MaxBlockSize = 1000
	s := openStore(t, o)
	small := openStore(t, testOptions(t, 500))

	tests := []struct {
		name    string
		s       *Store
		k       Key
		size    int
		wantErr error
	}{
		{name: "at MaxBlockSize", s: s, k: testKey(1), size: 1000},
		{name: "over MaxBlockSize", s: s, k: testKey(2), size: 1001, wantErr: ErrTooLarge},
		{name: "at capacity", s: small, k: testKey(3), size: 500},
		{name: "over capacity", s: small, k: testKey(4), size: 501, wantErr: ErrTooLarge},
		{name: "empty object", s: s, k: Key{Volume: "v"}, size: 1, wantErr: ErrInvalidKey},
		{name: "long volume", s: s, k: Key{Volume: strings.Repeat("v", MaxKeyPartLen+1), Object: "o"}, size: 1, wantErr: ErrInvalidKey},
		{name: "long object", s: s, k: Key{Object: strings.Repeat("o", MaxKeyPartLen+1)}, size: 1, wantErr: ErrInvalidKey},
		{name: "longest key", s: s, k: Key{Volume: strings.Repeat("v", MaxKeyPartLen), Object: strings.Repeat("o", MaxKeyPartLen)}, size: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := blockData(tt.k, tt.size)
			err := tt.s.Put(context.Background(), tt.k, data, Meta{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			_, ok := tt.s.Has(tt.k)
			if ok != (tt.wantErr == nil) {
				t.Fatalf("Has = %v after Put error %v", ok, err)
			}
			if ok {
				if got, _ := mustGet(t, tt.s, tt.k); !bytes.Equal(got, data) {
					t.Error("Get returned other bytes")
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s := openStore(t, testOptions(t, 1<<20))
	k := testKey(1)
	data := blockData(k, 100)
	mustPut(t, s, k, data, Meta{})
	if err := s.Delete(context.Background(), k); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok := s.Has(k); ok {
		t.Error("Has after Delete")
	}
	if fileExists(t, blockFile(s, k)) {
		t.Error("block file still exists after Delete")
	}
	if _, _, err := s.Get(context.Background(), k, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(context.Background(), k); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if st := s.Stats(); st.Blocks != 0 || st.Bytes != 0 {
		t.Errorf("Stats after Delete = %+v", st)
	}
	mustPut(t, s, k, data, Meta{})
	if got, _ := mustGet(t, s, k); !bytes.Equal(got, data) {
		t.Error("Get after Put after Delete returned other bytes")
	}
}

func TestClosed(t *testing.T) {
	o := testOptions(t, 1<<20)
	s := openStore(t, o)
	k := testKey(1)
	mustPut(t, s, k, []byte("x"), Meta{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	if _, _, err := s.Get(ctx, k, 0, -1); !errors.Is(err, ErrClosed) {
		t.Errorf("Get error = %v, want ErrClosed", err)
	}
	if err := s.Put(ctx, testKey(2), []byte("y"), Meta{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Put error = %v, want ErrClosed", err)
	}
	if err := s.Delete(ctx, k); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete error = %v, want ErrClosed", err)
	}
	if _, ok := s.Has(k); ok {
		t.Error("Has = true on a closed store")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Close released the directory.
	s2 := openStore(t, o)
	if _, ok := s2.Has(k); !ok {
		t.Error("block lost across Close and Open")
	}
}

func TestOpenLocksDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("locking is implemented on Linux only")
	}
	o := testOptions(t, 1<<20)
	openStore(t, o)
	if s, err := Open(context.Background(), o); err == nil {
		s.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
}

func TestOpenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := testOptions(t, 1<<20)
	if s, err := Open(ctx, o); !errors.Is(err, context.Canceled) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open error = %v, want context.Canceled", err)
	}
	// The failed Open released the directory.
	openStore(t, o)
}

func TestOpenInvalidOptions(t *testing.T) {
	if _, err := Open(context.Background(), Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "CapacityBytes") {
		t.Errorf("Open without CapacityBytes error = %v", err)
	}
}

func TestOpenCreatesDir(t *testing.T) {
	o := testOptions(t, 1<<20)
	o.Dir += "/a/b"
	s := openStore(t, o)
	mustPut(t, s, testKey(1), []byte("x"), Meta{})
	if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
		t.Fatalf("Dir not created: %v", err)
	}
}
