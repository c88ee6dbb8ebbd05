package juice

import (
	"errors"
	"fmt"
	"strings"
)

// MaxSymlinkHops is the most symlinks Resolve follows to resolve one path
// (Linux's limit, after which open fails with ELOOP). One more is an error
// wrapping ErrSymlinkLoop.
const MaxSymlinkHops = 40

// MaxSymlinkTarget is the longest symlink target, in bytes, Resolve
// follows (Linux's PATH_MAX). A longer one is an error wrapping
// ErrSymlinkTarget.
const MaxSymlinkTarget = 4096

var (
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
	switch {
	case target == "":
		return nil, fmt.Errorf("%w: empty", ErrSymlinkTarget)
	case len(target) > MaxSymlinkTarget:
		return nil, fmt.Errorf("%w: %d bytes, longer than %d", ErrSymlinkTarget, len(target), MaxSymlinkTarget)
	case strings.IndexByte(target, 0) >= 0:
		return nil, fmt.Errorf("%w: holds a NUL byte", ErrSymlinkTarget)
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

// within tells whether the clean absolute path p is root or below it.
func within(root, p string) bool {
	if root == "/" || p == root {
		return true
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}
