package ring

import (
	"encoding/json"
	"errors"
	"fmt"
)

// metaVersion is the version of the node-metadata encoding. Bump it only for
// changes old nodes cannot read. Adding a JSON field is not such a change:
// decoders ignore fields they do not know.
const metaVersion = 1

// ErrBadMeta reports gossip node metadata that could not be decoded or does
// not describe a valid member.
var ErrBadMeta = errors.New("ring: bad node metadata")

// nodeMeta is the memberlist node metadata: a small JSON object, well under
// memberlist's 512-byte limit for sane IDs and addresses. Options.Validate
// checks the size.
type nodeMeta struct {
	V                int    `json:"v"`
	ID               string `json:"id"`
	Addr             string `json:"addr"`
	Weight           int    `json:"w"`
	PlacementVersion int    `json:"pv"`
}

func encodeMeta(m Member) ([]byte, error) {
	return json.Marshal(nodeMeta{V: metaVersion, ID: m.ID, Addr: m.Addr, Weight: m.Weight, PlacementVersion: m.PlacementVersion})
}

// decodeMeta decodes the metadata gossiped by memberlist node nodeName. The
// data comes from the network, so every failure is an error, never a panic.
// Errors wrap ErrBadMeta.
func decodeMeta(nodeName string, b []byte) (Member, error) {
	if len(b) == 0 {
		return Member{}, fmt.Errorf("%w: empty", ErrBadMeta)
	}
	var nm nodeMeta
	if err := json.Unmarshal(b, &nm); err != nil {
		return Member{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if nm.V != metaVersion {
		return Member{}, fmt.Errorf("%w: unsupported version %d (want %d)", ErrBadMeta, nm.V, metaVersion)
	}
	if nm.ID != nodeName {
		return Member{}, fmt.Errorf("%w: id %q does not match gossip node name %q", ErrBadMeta, nm.ID, nodeName)
	}
	m := Member{ID: nm.ID, Addr: nm.Addr, Weight: nm.Weight, PlacementVersion: nm.PlacementVersion}
	if err := m.validate(); err != nil {
		return Member{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return m, nil
}
