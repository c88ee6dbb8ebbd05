package blockstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// MaxKeyPartLen bounds the length in bytes of Key.Volume and of
// Key.Object. Object stores allow keys of at most 1024 bytes.
const MaxKeyPartLen = 4096

// Key names a block: an object of a volume's origin object store.
type Key struct {
	Volume string // volume UUID
	Object string // object key as the origin stores it
}

// String returns "volume/object", for logs.
func (k Key) String() string { return k.Volume + "/" + k.Object }

// LogValue implements slog.LogValuer, logging k as its String.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

func (k Key) validate() error {
	switch {
	case k.Object == "":
		return fmt.Errorf("%w: empty object", ErrInvalidKey)
	case len(k.Volume) > MaxKeyPartLen:
		return fmt.Errorf("%w: volume is %d bytes, more than %d", ErrInvalidKey, len(k.Volume), MaxKeyPartLen)
	case len(k.Object) > MaxKeyPartLen:
		return fmt.Errorf("%w: object is %d bytes, more than %d", ErrInvalidKey, len(k.Object), MaxKeyPartLen)
	}
	return nil
}

// Meta is what the store keeps about a block besides its bytes.
type Meta struct {
	Compressible bool // caller-decided hint persisted with the block (e.g. worth s2 on the wire)
}

// blockID names a block's file: the first 16 bytes of
// SHA-256(uvarint(len(Volume)) || Volume || Object). 128 bits make a
// collision between two keys of one store practically impossible; should
// one happen anyway, the key in the file's header tells them apart and the
// second block is a miss.
type blockID [16]byte

func newBlockID(k Key) blockID {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k.Volume)))])
	h.Write([]byte(k.Volume))
	h.Write([]byte(k.Object))
	var sum [sha256.Size]byte
	var id blockID
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// String returns the 32 lowercase hex digits of id, its file name.
func (id blockID) String() string { return hex.EncodeToString(id[:]) }

// fanoutName returns the name of the fan-out directory of the ids starting
// with byte b.
func fanoutName(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// isFanoutName reports whether name is a fan-out directory's name.
func isFanoutName(name string) bool {
	b, err := hex.DecodeString(name)
	return err == nil && len(b) == 1 && fanoutName(b[0]) == name
}

// parseBlockID parses a file name written by blockID.String.
func parseBlockID(name string) (blockID, bool) {
	var id blockID
	if len(name) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil || id.String() != name {
		return id, false
	}
	return id, true
}
