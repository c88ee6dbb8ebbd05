package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ringcache/ringcache/pkg/ring"
)

// legacyGossipKey is the key nodes derived from the cluster token before
// they had a gossip key of their own. Anyone holding the token can compute
// it, so it is refused as a gossip key.
func legacyGossipKey(token []byte) []byte {
	k := sha256.Sum256(append([]byte("ringcache gossip key\x00"), token...))
	return k[:]
}

// validateGossipKeys checks the gossip keys, and that none of them is
// known to holders of the cluster token. Errors never show key material.
func validateGossipKeys(keys [][]byte, token []byte) error {
	if len(keys) == 0 {
		return errors.New("a gossip key is required (--gossip-key-file): only cache nodes may hold it, so it cannot come from the cluster token")
	}
	if len(keys) > ring.MaxKeys {
		return fmt.Errorf("%d gossip keys, at most %d", len(keys), ring.MaxKeys)
	}
	legacy := legacyGossipKey(token)
	for i, k := range keys {
		if len(k) != ring.KeySize {
			return fmt.Errorf("gossip key %d is %d bytes, want %d", i+1, len(k), ring.KeySize)
		}
		if len(token) > 0 && (bytes.Equal(k, legacy) || bytes.Equal(k, token) ||
			bytes.Equal([]byte(base64.StdEncoding.EncodeToString(k)), token)) {
			return fmt.Errorf("gossip key %d is the cluster token or derived from it: every mount holds the token, so it must not admit members to the ring (%s)", i+1, ring.GenerateKeyHint)
		}
	}
	return nil
}
