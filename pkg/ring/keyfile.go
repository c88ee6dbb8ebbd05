package ring

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// The gossip key file: the keys that encrypt and authenticate gossip, which
// only cache nodes hold. One key per line, each the standard base64 (with
// padding) of KeySize random bytes, e.g. from
//
//	head -c 32 /dev/urandom | base64
//
// The first key is the primary: it encrypts what this node sends. Every
// key decrypts, so a file with the new key and the old one lets a cluster
// change keys without a split (docs/operations.md). Blank lines and lines
// starting with '#' are ignored. Errors name the line, never its content.

// KeySize is the size of a gossip key: AES-256.
const KeySize = 32

// MaxKeys bounds the keys in a key file: a primary and a few old or new
// keys during a rotation.
const MaxKeys = 4

// maxKeyFileSize bounds what ParseKeyFile reads.
const maxKeyFileSize = 4096

// ErrBadKeyFile reports a gossip key file that is not MaxKeys or fewer
// distinct base64-encoded KeySize-byte keys.
var ErrBadKeyFile = errors.New("ring: bad gossip key file")

// GenerateKeyHint tells an operator how to make a key.
const GenerateKeyHint = "make one with: head -c 32 /dev/urandom | base64"

// ParseKeyFile parses the content of a gossip key file. The keys are
// returned primary first.
func ParseKeyFile(b []byte) ([][]byte, error) {
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadKeyFile, maxKeyFileSize)
	}
	var keys [][]byte
	for n, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrBadKeyFile, MaxKeys)
		}
		want := base64.StdEncoding.EncodedLen(KeySize)
		if len(line) != want {
			return nil, fmt.Errorf("%w: line %d is %d characters, want %d (the base64 of %d bytes; %s)",
				ErrBadKeyFile, n+1, len(line), want, KeySize, GenerateKeyHint)
		}
		key := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
		m, err := base64.StdEncoding.Strict().Decode(key, line)
		if err != nil || m != KeySize {
			return nil, fmt.Errorf("%w: line %d is not the standard base64 of %d bytes (%s)", ErrBadKeyFile, n+1, KeySize, GenerateKeyHint)
		}
		key = key[:KeySize:KeySize]
		if why := weakKey(key); why != "" {
			clear(key)
			return nil, fmt.Errorf("%w: line %d %s, not random bytes (%s)", ErrBadKeyFile, n+1, why, GenerateKeyHint)
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				return nil, fmt.Errorf("%w: line %d repeats a key", ErrBadKeyFile, n+1)
			}
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key (%s)", ErrBadKeyFile, GenerateKeyHint)
	}
	return keys, nil
}

// weakKey says why key is not random bytes, or "". Both hold for random
// bytes with a probability below 1e-13: 32 bytes all equal (a key of zero
// bytes, or one character typed 32 times), or all printable ASCII (the
// base64 of a typed password or text rather than of random bytes).
func weakKey(key []byte) string {
	if len(key) == 0 {
		return "is empty"
	}
	if bytes.Count(key, key[:1]) == len(key) {
		return "is one byte repeated"
	}
	for _, c := range key {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return "decodes to printable text (a typed password?)"
}

// LoadKeyFile reads and parses a gossip key file.
func LoadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read gossip key file: %w", err)
	}
	keys, err := ParseKeyFile(b)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// keyIDs names keys for logs, primary first: 8 hex digits of a hash of
// each, enough to tell which keys a node loaded during a rotation and
// nothing about the keys.
func keyIDs(keys [][]byte) []string {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		h := sha256.Sum256(append([]byte("ringcache gossip key id\x00"), k...))
		ids = append(ids, hex.EncodeToString(h[:4]))
	}
	return ids
}
