// Package blockkey owns the names of JuiceFS data blocks: parsing and
// formatting the object keys JuiceFS writes (Key, Parse) and the key a
// block is placed by on the ring (Ring). It is a leaf: no JuiceFS code,
// so the peer protocol and the ring can name blocks without pulling in
// the JuiceFS client.
package blockkey

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotBlockKey is returned for an object key that is not the key of a
// JuiceFS data block.
var ErrNotBlockKey = errors.New("not a juicefs data block key")

// Key is the parsed object key of one JuiceFS data block. JuiceFS
// names blocks
//
//	chunks/{id/1e6}/{id/1e3}/{id}_{index}_{size}       (default)
//	chunks/{id%256 as %02X}/{id/1e6}/{id}_{index}_{size} (--hash-prefix)
//
// where id is the slice ID, index the block's position in the slice and
// size the block's plaintext length in bytes. Blocks are immutable: a write
// creates new slice IDs, so a key always names the same bytes.
type Key struct {
	SliceID    uint64
	Index      int
	Size       int
	HashPrefix bool
}

// maxBlockSize bounds the size field of a key: JuiceFS's largest block
// size is 16 MiB.
const maxBlockSize = 16 << 20

// Parse parses and validates key. Only the canonical form JuiceFS
// itself writes is accepted, so two different strings never name the same
// block.
func Parse(key string) (Key, error) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "chunks" {
		return Key{}, fmt.Errorf("%w: %q", ErrNotBlockKey, key)
	}
	name := strings.Split(parts[3], "_")
	if len(name) != 3 {
		return Key{}, fmt.Errorf("%w: %q", ErrNotBlockKey, key)
	}
	id, err1 := strconv.ParseUint(name[0], 10, 64)
	indx, err2 := strconv.Atoi(name[1])
	size, err3 := strconv.Atoi(name[2])
	if err := errors.Join(err1, err2, err3); err != nil || id == 0 || indx < 0 || size <= 0 || size > maxBlockSize {
		return Key{}, fmt.Errorf("%w: %q", ErrNotBlockKey, key)
	}
	b := Key{SliceID: id, Index: indx, Size: size, HashPrefix: len(parts[1]) == 2 && strings.ToUpper(parts[1]) == parts[1] && parts[1] == fmt.Sprintf("%02X", id%256)}
	if b.String() != key {
		// Try the other layout before giving up: a non-hash-prefixed key
		// whose first directory happens to look like a hash prefix.
		b.HashPrefix = !b.HashPrefix
		if b.String() != key {
			return Key{}, fmt.Errorf("%w: %q is not in canonical form", ErrNotBlockKey, key)
		}
	}
	return b, nil
}

// String returns the object key, exactly as JuiceFS v1.3.1 formats it.
func (b Key) String() string {
	if b.HashPrefix {
		return fmt.Sprintf("chunks/%02X/%v/%v_%v_%v", b.SliceID%256, b.SliceID/1000/1000, b.SliceID, b.Index, b.Size)
	}
	return fmt.Sprintf("chunks/%v/%v/%v_%v_%v", b.SliceID/1000/1000, b.SliceID/1000, b.SliceID, b.Index, b.Size)
}

// Ring is the key a block is placed by on the ring: the volume's UUID and
// the object key, so that two volumes' blocks with the same object key
// (slice IDs are per volume) are different ring keys.
func Ring(volumeUUID, object string) string { return volumeUUID + "/" + object }
