package blockstore

import (
	"bytes"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func encodeFile(k Key, m Meta, data []byte) []byte {
	h := header{key: k, meta: m, dataLen: int64(len(data)), dataCRC: crc32.Checksum(data, castagnoli)}
	return append(h.encode(), data...)
}

func TestHeaderRoundtrip(t *testing.T) {
	tests := []struct {
		k    Key
		m    Meta
		data []byte
	}{
		{Key{Volume: "v", Object: "o"}, Meta{}, nil},
		{Key{Object: "o"}, Meta{Compressible: true}, []byte("data")},
		{testKey(1), Meta{Compressible: true}, blockData(testKey(1), 10_000)},
		// Longer than the first read of a header.
		{Key{Volume: strings.Repeat("v", MaxKeyPartLen), Object: strings.Repeat("o", MaxKeyPartLen)}, Meta{}, []byte("x")},
	}
	for _, tt := range tests {
		b := encodeFile(tt.k, tt.m, tt.data)
		h, err := readHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("readHeader(%.20s): %v", tt.k, err)
		}
		want := header{key: tt.k, meta: tt.m, dataLen: int64(len(tt.data)), dataCRC: crc32.Checksum(tt.data, castagnoli)}
		if h != want {
			t.Errorf("readHeader = %+v, want %+v", h, want)
		}
		if h.fileSize() != int64(len(b)) {
			t.Errorf("fileSize = %d, want %d", h.fileSize(), len(b))
		}
	}
}

// TestHeaderDetectsEveryBitFlip flips each bit of a header in turn.
func TestHeaderDetectsEveryBitFlip(t *testing.T) {
	b := encodeFile(testKey(1), Meta{Compressible: true}, []byte("some data"))
	hdrLen := len(b) - len("some data")
	for i := range hdrLen * 8 {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if h, err := readHeader(bytes.NewReader(c), int64(len(c))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bit %d of byte %d flipped: readHeader = %+v, %v, want ErrCorrupt", i%8, i/8, h, err)
		}
	}
}

func TestHeaderRejectsWhatItCannotRead(t *testing.T) {
	valid := encodeFile(testKey(1), Meta{}, []byte("data"))
	withCRC := func(edit func(b []byte)) []byte {
		b := bytes.Clone(valid)
		edit(b)
		h := b[:len(b)-len("data")]
		putUint32(h[28:32], headerCRC(h))
		return b
	}
	tests := map[string][]byte{
		"unknown flags":    withCRC(func(b []byte) { b[6] |= 0x02 }),
		"newer version":    withCRC(func(b []byte) { b[4] = 2 }),
		"data length":      withCRC(func(b []byte) { b[8]++ }),
		"huge length":      withCRC(func(b []byte) { b[15] = 0xff }),
		"longer key":       withCRC(func(b []byte) { b[22]++ }),
		"empty object":     encodeFile(Key{Volume: "v"}, Meta{}, nil),
		"short":            valid[:fixedHeaderSize-1],
		"empty":            nil,
		"truncated":        valid[:len(valid)-1],
		"extended":         append(bytes.Clone(valid), 0),
		"truncated in key": valid[:fixedHeaderSize+3],
	}
	for name, b := range tests {
		if h, err := readHeader(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrCorrupt) || !wrapsOnly(err, ErrCorrupt) {
			t.Errorf("%s: readHeader = %+v, %v, want ErrCorrupt only", name, h, err)
		}
	}
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func FuzzReadHeader(f *testing.F) {
	f.Add(encodeFile(testKey(1), Meta{Compressible: true}, []byte("data")))
	f.Add(encodeFile(Key{Object: "o"}, Meta{}, nil))
	f.Add([]byte("RCBK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("readHeader error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if h.fileSize() != int64(len(b)) {
			t.Fatalf("readHeader accepted a file of %d bytes with a header for %d", len(b), h.fileSize())
		}
		if !bytes.Equal(h.encode(), b[:h.size()]) {
			t.Fatal("decoded header does not encode back to the file's header")
		}
	})
}

func TestBlockID(t *testing.T) {
	ids := map[blockID]Key{}
	for _, k := range []Key{
		{Volume: "a", Object: "bc"},
		{Volume: "ab", Object: "c"},
		{Volume: "", Object: "abc"},
		testKey(1),
		testKey(2),
	} {
		id := newBlockID(k)
		if other, dup := ids[id]; dup {
			t.Errorf("%q and %q have the same id", k, other)
		}
		ids[id] = k
		if id != newBlockID(k) {
			t.Error("id is not deterministic")
		}
		name := id.String()
		if parsed, ok := parseBlockID(name); !ok || parsed != id {
			t.Errorf("parseBlockID(%q) = %x, %v", name, parsed, ok)
		}
		if fanoutName(id[0]) != name[:2] {
			t.Errorf("fanoutName = %q, want %q", fanoutName(id[0]), name[:2])
		}
	}
	for _, name := range []string{"", "00", strings.Repeat("0", 31), strings.Repeat("0", 33), strings.Repeat("A", 32), strings.Repeat("g", 32), strings.Repeat("0", 30) + ".x"} {
		if _, ok := parseBlockID(name); ok {
			t.Errorf("parseBlockID(%q) succeeded", name)
		}
	}
}
