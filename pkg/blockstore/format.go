package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The block file format is documented in the package comment.
const (
	magic            = "RCBK"
	formatVersion    = 1
	fixedHeaderSize  = 32
	flagCompressible = 1 << 0
	knownFlags       = flagCompressible

	// headerProbeSize is how much of a file is read at once to decode its
	// header; longer keys cost a second read.
	headerProbeSize = 512
)

// castagnoli is the CRC-32C table; crc32 uses the CPU's CRC32 instruction
// for it where there is one. It is immutable.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded header of a block file.
type header struct {
	key     Key
	meta    Meta
	dataLen int64
	dataCRC uint32
}

// size is the length of the encoded header: the offset of the data.
func (h *header) size() int64 {
	return fixedHeaderSize + int64(len(h.key.Volume)) + int64(len(h.key.Object))
}

// fileSize is the length of a valid file with this header.
func (h *header) fileSize() int64 { return h.size() + h.dataLen }

// encode returns the encoded header. The key must be valid.
func (h *header) encode() []byte {
	b := make([]byte, h.size())
	copy(b[0:4], magic)
	binary.LittleEndian.PutUint16(b[4:6], formatVersion)
	var flags uint16
	if h.meta.Compressible {
		flags |= flagCompressible
	}
	binary.LittleEndian.PutUint16(b[6:8], flags)
	binary.LittleEndian.PutUint64(b[8:16], uint64(h.dataLen))
	binary.LittleEndian.PutUint32(b[16:20], h.dataCRC)
	binary.LittleEndian.PutUint16(b[20:22], uint16(len(h.key.Volume)))
	binary.LittleEndian.PutUint16(b[22:24], uint16(len(h.key.Object)))
	n := copy(b[fixedHeaderSize:], h.key.Volume)
	copy(b[fixedHeaderSize+n:], h.key.Object)
	binary.LittleEndian.PutUint32(b[28:32], headerCRC(b))
	return b
}

// headerCRC is the checksum of an encoded header b: bytes [0,28) and the
// key.
func headerCRC(b []byte) uint32 {
	crc := crc32.Update(0, castagnoli, b[:28])
	return crc32.Update(crc, castagnoli, b[fixedHeaderSize:])
}

// corruptf returns an error wrapping ErrCorrupt, and nothing else.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// readHeader reads and checks the header of a block file of fileSize
// bytes, including that fileSize matches it. Failed checks return errors
// wrapping only ErrCorrupt; failed reads return the read's error.
func readHeader(r io.ReaderAt, fileSize int64) (header, error) {
	if fileSize < fixedHeaderSize {
		return header{}, corruptf("file of %d bytes is shorter than a header", fileSize)
	}
	b := make([]byte, min(fileSize, headerProbeSize))
	if err := readFullAt(r, b, 0); err != nil {
		return header{}, err
	}
	if string(b[0:4]) != magic {
		return header{}, corruptf("bad magic %q", b[0:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != formatVersion {
		return header{}, corruptf("unknown format version %d", v)
	}
	flags := binary.LittleEndian.Uint16(b[6:8])
	volLen := int64(binary.LittleEndian.Uint16(b[20:22]))
	objLen := int64(binary.LittleEndian.Uint16(b[22:24]))
	hdrLen := fixedHeaderSize + volLen + objLen
	if hdrLen > fileSize {
		return header{}, corruptf("header of %d bytes in a file of %d bytes", hdrLen, fileSize)
	}
	if hdrLen > int64(len(b)) {
		b = append(b, make([]byte, hdrLen-int64(len(b)))...)
		if err := readFullAt(r, b[headerProbeSize:], headerProbeSize); err != nil {
			return header{}, err
		}
	}
	b = b[:hdrLen]
	if got, want := headerCRC(b), binary.LittleEndian.Uint32(b[28:32]); got != want {
		return header{}, corruptf("header checksum %08x, want %08x", got, want)
	}
	// The checksum matched: the fields are as written, but check them as
	// a newer writer's file or a checksum collision would not be.
	if flags&^knownFlags != 0 {
		return header{}, corruptf("unknown flags %#x", flags)
	}
	dataLen := binary.LittleEndian.Uint64(b[8:16])
	if dataLen > uint64(fileSize-hdrLen) || hdrLen+int64(dataLen) != fileSize {
		return header{}, corruptf("file is %d bytes, header says %d + %d of data", fileSize, hdrLen, dataLen)
	}
	h := header{
		key: Key{
			Volume: string(b[fixedHeaderSize : fixedHeaderSize+volLen]),
			Object: string(b[fixedHeaderSize+volLen:]),
		},
		meta:    Meta{Compressible: flags&flagCompressible != 0},
		dataLen: int64(dataLen),
		dataCRC: binary.LittleEndian.Uint32(b[16:20]),
	}
	if err := h.key.validate(); err != nil {
		return header{}, corruptf("bad key in header: %v", err)
	}
	return h, nil
}

// readFullAt fills b from r at off. A file shorter than that is corrupt:
// block files are written once and never change.
func readFullAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	switch {
	case n == len(b):
		return nil
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return corruptf("short read: %d of %d bytes at offset %d", n, len(b), off)
	default:
		return err
	}
}
