package juicetest

import (
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/juicedata/juicefs/pkg/meta"
	"github.com/juicedata/juicefs/pkg/vfs"
)

// ChunkSize is the size of a JuiceFS chunk: a file's slices are kept per
// chunk, and reads of a chunk are served from one read buffer.
const ChunkSize = 64 << 20

// Pass is one open-write-close pass on a file: a write of Data at Off, or,
// with Truncate, a truncate to Off (Data unused).
type Pass struct {
	Off      int64
	Data     []byte
	Truncate bool
}

// String describes the pass without its data.
func (p Pass) String() string {
	if p.Truncate {
		return fmt.Sprintf("truncate(%d)", p.Off)
	}
	return fmt.Sprintf("write(%d, %d bytes)", p.Off, len(p.Data))
}

// FragmentedPasses returns a deterministic sequence of passes (from seed)
// that leaves a file of size bytes (ChunkSize + 8 MiB or more) whose chunks hold
// many overlapping slices, the way a file built by several writers over
// time looks: sequential appends, a sparse hole, small writes across the
// first chunk boundary, random in-place overwrites (dd conv=notrunc) of
// 36 bytes to 600 KiB, a truncate down and a truncate up. The data is
// compressible text-like bytes with a different alphabet per pass, so that
// compressed blocks hold literals and a misplaced byte is visible. Each
// chunk gets fewer than 99 slices, so a read-write client never compacts
// them.
func FragmentedPasses(seed uint64, size int64) ([]Pass, error) {
	if size < ChunkSize+8<<20 || size > 4*ChunkSize {
		return nil, fmt.Errorf("juicetest: fragmented file size %d must be in [%d, %d]", size, ChunkSize+8<<20, 4*ChunkSize)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var passes []Pass
	n := 0
	write := func(off int64, length int) {
		n++
		passes = append(passes, Pass{Off: off, Data: textBytes(r, n, length)})
	}
	// Appends: the first 56 MiB in seven passes.
	const appendLen = 8 << 20
	for off := int64(0); off < 7*appendLen; off += appendLen {
		write(off, appendLen)
	}
	// A sparse hole: the tail past the first chunk, leaving
	// [56 MiB, ChunkSize+4 MiB) unwritten.
	tail := int64(ChunkSize + 4<<20)
	write(tail, int(size-tail))
	// Part of the hole filled, crossing nothing.
	write(60<<20, 1<<20+12345)
	// Small writes around and across the chunk boundary.
	for range 24 {
		off := int64(ChunkSize) - 96<<10 + r.Int64N(192<<10)
		write(off, 17+r.IntN(8<<10))
	}
	for _, l := range []int{36, 4096, 300 << 10} {
		write(int64(ChunkSize)-int64(l)/2, l)
	}
	// Random in-place overwrites over the whole file.
	sizes := []int{36, 512, 4 << 10, 33 << 10, 130 << 10, 600 << 10}
	for range 48 {
		l := sizes[r.IntN(len(sizes))] + r.IntN(97)
		write(r.Int64N(size-int64(l)), l)
	}
	// Truncate down past the boundary writes of the tail, rewrite part
	// of it, then truncate up: the end of the file is a hole again.
	cut := size - 3<<20 - 4321
	passes = append(passes, Pass{Off: cut, Truncate: true})
	write(cut-1000, 1<<20)
	passes = append(passes, Pass{Off: size, Truncate: true})
	// A last burst of 36-byte overwrites, each its own slice.
	for range 12 {
		write(r.Int64N(size-36), 36)
	}
	return passes, nil
}

// textBytes returns length compressible bytes: runs of letters from an
// alphabet that depends on the pass number, with spaces and newlines.
func textBytes(r *rand.Rand, pass, length int) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alpha := letters[pass%len(letters):] + letters[:pass%len(letters)]
	alpha = alpha[:20]
	b := make([]byte, length)
	for i := 0; i < length; {
		v := r.Uint64()
		for j := 0; j < 8 && i < length; j++ {
			c := byte(v >> (8 * j))
			switch {
			case c < 24:
				b[i] = ' '
			case c < 26:
				b[i] = '\n'
			default:
				b[i] = alpha[int(c)%len(alpha)]
			}
			i++
		}
	}
	return b
}

// WritePasses creates p (absolute in the volume, parent directories
// included) and applies passes to it, each in its own open-write-close (or
// open-truncate-close) pass, so that every pass commits its own slices.
func (w *Writer) WritePasses(p string, passes []Pass) error {
	ctx := meta.Background()
	f, err := w.create(ctx, p)
	if err != nil {
		return err
	}
	if e := f.Close(ctx); e != 0 {
		return fmt.Errorf("juicetest: close %s: %w", p, e)
	}
	for i, ps := range passes {
		f, e := w.fs.Open(ctx, p, vfs.MODE_MASK_W)
		if e != 0 {
			return fmt.Errorf("juicetest: pass %d: open %s: %w", i, p, e)
		}
		if ps.Truncate {
			e = f.Truncate(ctx, uint64(ps.Off))
		} else {
			_, e = f.Pwrite(ctx, ps.Data, ps.Off)
		}
		if e != 0 {
			f.Close(ctx)
			return fmt.Errorf("juicetest: pass %d %v on %s: %w", i, ps, p, e)
		}
		if e := f.Close(ctx); e != 0 {
			return fmt.Errorf("juicetest: pass %d: close %s: %w", i, p, e)
		}
	}
	return nil
}

// ApplyPasses applies passes to a new local file at local with
// os.File.WriteAt and Truncate and returns the file's bytes: the content a
// correct file system shows after the same passes.
func ApplyPasses(local string, passes []Pass) ([]byte, error) {
	f, err := os.OpenFile(local, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for i, ps := range passes {
		if ps.Truncate {
			err = f.Truncate(ps.Off)
		} else {
			_, err = f.WriteAt(ps.Data, ps.Off)
		}
		if err != nil {
			return nil, fmt.Errorf("juicetest: local pass %d %v: %w", i, ps, err)
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return os.ReadFile(local)
}
