package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Volume IDs made by CreateVolume are
//
//	<volume>:<path>#<10 hex digits of sha256(request name)>
//
// e.g. models:/models/llama-3-8b/v2#3f9a0c12d4. The request name (the PV
// name in Kubernetes) makes the ID unique per PersistentVolume even when
// many PVCs select the same model: kubelet keys its volume state by driver
// and volume handle, so two PVs must never share one. When the result would
// pass CSI's 128-byte limit the path is replaced by a digest:
//
//	<volume>:~<32 hex digits of sha256(path)>#<10 hex digits>
//
// and the path travels only in the volume context. The node never parses
// IDs: it takes the volume and path from the volume context, so static PVs
// and inline volumes may use any ID.

const (
	nameHashLen = 10
	pathHashLen = 32
)

func hexHash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

// makeVolumeID returns the ID of the volume CreateVolume makes for name.
func makeVolumeID(name string, ref Model) string {
	suffix := "#" + hexHash(name, nameHashLen)
	id := ref.Volume + ":" + ref.Path + suffix
	if len(id) <= maxIDLen {
		return id
	}
	return ref.Volume + ":~" + hexHash(ref.Path, pathHashLen) + suffix
}

// parsedID is a volume ID made by makeVolumeID.
type parsedID struct {
	Volume   string
	Path     string // "" when the ID holds a digest
	PathHash string // the digest, when the path did not fit
}

// matches reports whether the ID names the model ref.
func (p parsedID) matches(ref Model) bool {
	if p.Volume != ref.Volume {
		return false
	}
	if p.Path != "" {
		return p.Path == ref.Path
	}
	return p.PathHash == hexHash(ref.Path, pathHashLen)
}

// parseVolumeID parses an ID made by makeVolumeID; ok is false for anything
// else (which, for this driver, names no volume).
func parseVolumeID(id string) (parsedID, bool) {
	if len(id) > maxIDLen || len(id) < nameHashLen+2 {
		return parsedID{}, false
	}
	hashAt := len(id) - nameHashLen - 1
	if id[hashAt] != '#' || !isHex(id[hashAt+1:]) {
		return parsedID{}, false
	}
	body := id[:hashAt]
	vol, rest, ok := strings.Cut(body, ":")
	if !ok || !volumeNameRE.MatchString(vol) {
		return parsedID{}, false
	}
	if h, ok := strings.CutPrefix(rest, "~"); ok {
		if len(h) != pathHashLen || !isHex(h) {
			return parsedID{}, false
		}
		return parsedID{Volume: vol, PathHash: h}, true
	}
	p, err := cleanVolumePath(rest, "path", false)
	if err != nil || p != rest {
		return parsedID{}, false
	}
	return parsedID{Volume: vol, Path: p}, true
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}
