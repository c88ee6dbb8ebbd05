package juice

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSymlinkHops is the most symlinks Resolve follows to resolve one path
// (Linux's limit, after which open fails with ELOOP). One more is an error
// wrapping ErrSymlinkLoop.
const MaxSymlinkHops = 40

// MaxSymlinkTarget is the longest symlink target, in bytes, Resolve
// follows (Linux's PATH_MAX). A longer one is an error wrapping
// ErrSymlinkTarget.
const MaxSymlinkTarget = 4096

// MaxPathComponents is the most path components Resolve walks for one
// path, across the targets of every symlink it goes through (each
// component looked up, and each ".." taken, counts). More is an error
// wrapping ErrSymlinkLoop: 40 hops of 4096-byte targets could otherwise
// cost 80000 lookups for a single path.
const MaxPathComponents = 4096

// MaxResolveLookups is the most metadata lookups (Lookup and ReadLink
// calls, made resolving paths and the symlinks they reach) one Resolve
// call makes; one more is an error wrapping ErrResolveBudget. Directory
// listings and chunk reads are not counted: they are bounded by the size
// of the trees walked.
const MaxResolveLookups = 1 << 17

// maxResolveLookups is MaxResolveLookups, lowered by tests.
var maxResolveLookups = MaxResolveLookups

var (
	// ErrResolveBudget is returned (wrapped, naming the path) when a
	// Resolve call needs more than MaxResolveLookups metadata lookups.
	ErrResolveBudget = errors.New("resolve budget exceeded")
	// ErrSymlinkLoop is returned (wrapped, naming the path and the last
	// symlink) when resolving a path takes more than MaxSymlinkHops
	// symlinks: a loop, or a chain too long to be one a reader follows.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrSymlinkOutside is returned (wrapped, naming the symlink and its
	// target) for a symlink whose target climbs above the volume's root.
	ErrSymlinkOutside = errors.New("symlink target is outside the volume")
	// ErrSymlinkTarget is returned (wrapped) for a symlink target that
	// names no path: empty, longer than MaxSymlinkTarget, or holding a NUL
	// byte.
	ErrSymlinkTarget = errors.New("invalid symlink target")
)

// ResolveSymlinkTarget returns the path, absolute within the volume and
// clean, that target names when it is the target of a symlink in the
// directory dir (absolute within the volume, e.g. "/models/m" for the link
// /models/m/latest).
//
// The resolution is lexical, as path.Join would do it, but refusing to
// climb: a relative target is taken from dir, an absolute one from the
// volume's root ("/" is the root: a reader that mounts the volume elsewhere
// resolves absolute targets against its own root, so relative targets are
// the ones that mean the same through every mount); "." components go, and
// each ".." removes the component before it, before any component is looked
// up. A target whose ".." would climb above the volume's root is an error
// wrapping ErrSymlinkOutside; an empty target, one longer than
// MaxSymlinkTarget bytes or one holding a NUL byte one wrapping
// ErrSymlinkTarget; a dir that is not absolute within the volume one
// wrapping ErrInvalidPath.
//
// Where the result leads is for the caller to find out: its components may
// be symlinks themselves, or missing.
//
// This is not how Resolve follows a symlink: it walks a target's
// components physically, following symlinks among them before a ".."
// (see Resolve). The two agree when no component of dir and target is a
// symlink; ResolveSymlinkTarget is what a target means read as text.
func ResolveSymlinkTarget(dir, target string) (string, error) {
	dparts, err := splitVolumePath(dir)
	if err != nil {
		return "", err
	}
	parts, err := symlinkTargetParts(dparts, target)
	if err != nil {
		return "", err
	}
	return "/" + strings.Join(parts, "/"), nil
}

// symlinkTargetParts is ResolveSymlinkTarget on components: dir holds the
// components of the link's directory (clean), and the result is a new
// slice.
func symlinkTargetParts(dir []string, target string) ([]string, error) {
	if err := checkSymlinkTarget(target); err != nil {
		return nil, err
	}
	var parts []string
	if !strings.HasPrefix(target, "/") {
		parts = make([]string, len(dir), len(dir)+strings.Count(target, "/")+1)
		copy(parts, dir)
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return nil, fmt.Errorf("%w: \"..\" climbs above the volume root", ErrSymlinkOutside)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	return parts, nil
}

// checkSymlinkTarget returns an error wrapping ErrSymlinkTarget for a
// target that names no path: empty, longer than MaxSymlinkTarget, or
// holding a NUL byte.
func checkSymlinkTarget(target string) error {
	switch {
	case target == "":
		return fmt.Errorf("%w: empty", ErrSymlinkTarget)
	case len(target) > MaxSymlinkTarget:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrSymlinkTarget, len(target), MaxSymlinkTarget)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("%w: holds a NUL byte", ErrSymlinkTarget)
	}
	return nil
}

// MaxQuotedName is the most bytes of a name from the volume (a path, a
// symlink target) an error quotes; a longer one is cut, its quote followed
// by "…". Names are quoted as Go strings, so control characters never
// reach a reader raw.
const MaxQuotedName = 256

// QuoteName quotes a name from the volume for an error or a message (see
// MaxQuotedName).
func QuoteName(s string) string {
	if len(s) <= MaxQuotedName {
		return strconv.Quote(s)
	}
	n := MaxQuotedName
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "…"
}

// within tells whether the clean absolute path p is root or below it.
func within(root, p string) bool {
	if root == "/" || p == root {
		return true
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}
