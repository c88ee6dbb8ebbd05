package csi

import (
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds of every string a CSI request carries. Anything longer is
// InvalidArgument before any other work, and never stored or logged in
// full.
const (
	// maxPathLen and maxNameLen are Linux's PATH_MAX and NAME_MAX.
	maxPathLen = 4096
	maxNameLen = 255
	// maxMapEntries bounds the keys of a volume context or secret.
	maxMapEntries = 64
	// maxKeyLen fits a Kubernetes qualified key (a 253-byte prefix, '/',
	// a 63-byte name).
	maxKeyLen = 320
	// maxValueLen bounds one value; maxMapBytes a whole map.
	maxValueLen = 4096
	maxMapBytes = 16 << 10
	// maxMountFlags and maxFlagLen bound a capability's mount flags.
	maxMountFlags = 16
	maxFlagLen    = 64
)

// quote is s for a message: quoted, at most 64 bytes of it.
func quote(s string) string {
	if len(s) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// checkID checks a volume ID (or another CSI ID field): required, at most
// maxIDLen bytes, printable UTF-8.
func checkID(id, field string) error {
	switch {
	case id == "":
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	case len(id) > maxIDLen:
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes long; at most %d are allowed", field, len(id), maxIDLen)
	case !utf8.ValidString(id) || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return status.Errorf(codes.InvalidArgument, "%s %s has characters that are not printable UTF-8", field, quote(id))
	}
	return nil
}

// checkPathBounds checks the bounds of a node path (length, components,
// control characters) without requiring it to be absolute, and returns it
// clean.
func checkPathBounds(p, field string) (string, error) {
	if !filepath.IsAbs(p) && p != "" && len(p) <= maxPathLen {
		c, err := checkPath("/"+p, field)
		if err != nil {
			return "", err
		}
		return c[1:], nil
	}
	return checkPath(p, field)
}

// checkPath checks an absolute node path from a request and returns it
// clean: at most maxPathLen bytes, components of at most maxNameLen, no
// NUL or control characters.
func checkPath(p, field string) (string, error) {
	switch {
	case p == "":
		return "", status.Errorf(codes.InvalidArgument, "%s is required", field)
	case len(p) > maxPathLen:
		return "", status.Errorf(codes.InvalidArgument, "%s is %d bytes long; at most %d are allowed", field, len(p), maxPathLen)
	case !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0:
		return "", status.Errorf(codes.InvalidArgument, "%s %s has control characters or invalid UTF-8", field, quote(p))
	case !filepath.IsAbs(p):
		return "", status.Errorf(codes.InvalidArgument, "%s %s must be absolute", field, quote(p))
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > maxNameLen {
			return "", status.Errorf(codes.InvalidArgument, "%s has a component of %d bytes; at most %d are allowed", field, len(c), maxNameLen)
		}
	}
	return filepath.Clean(p), nil
}

// checkMap bounds a request's map (volume context, secrets, parameters).
// Values of secrets never appear in messages.
func checkMap(m map[string]string, what string, secret bool) error {
	if len(m) > maxMapEntries {
		return status.Errorf(codes.InvalidArgument, "the %s has %d keys; at most %d are allowed", what, len(m), maxMapEntries)
	}
	total := 0
	for k, v := range m {
		total += len(k) + len(v)
		switch {
		case k == "":
			return status.Errorf(codes.InvalidArgument, "the %s has an empty key", what)
		case len(k) > maxKeyLen:
			return status.Errorf(codes.InvalidArgument, "the %s has a key of %d bytes (%s); at most %d are allowed", what, len(k), quote(k), maxKeyLen)
		case !utf8.ValidString(k) || strings.IndexFunc(k, unicode.IsControl) >= 0:
			return status.Errorf(codes.InvalidArgument, "the %s key %s has control characters or invalid UTF-8", what, quote(k))
		case len(v) > maxValueLen:
			return status.Errorf(codes.InvalidArgument, "the %s key %s has a value of %d bytes; at most %d are allowed", what, quote(k), len(v), maxValueLen)
		case !utf8.ValidString(v):
			return status.Errorf(codes.InvalidArgument, "the %s key %s has a value that is not UTF-8", what, quote(k))
		case !secret && strings.IndexFunc(v, unicode.IsControl) >= 0:
			return status.Errorf(codes.InvalidArgument, "the %s key %s has a value with control characters", what, quote(k))
		}
	}
	if total > maxMapBytes {
		return status.Errorf(codes.InvalidArgument, "the %s holds %d bytes; at most %d are allowed", what, total, maxMapBytes)
	}
	return nil
}

// checkMountFlags bounds a capability's mount flags (their values are
// checked by capabilityError).
func checkMountFlags(flags []string) error {
	if len(flags) > maxMountFlags {
		return status.Errorf(codes.InvalidArgument, "%d mount flags; at most %d are allowed", len(flags), maxMountFlags)
	}
	for _, f := range flags {
		if len(f) > maxFlagLen {
			return status.Errorf(codes.InvalidArgument, "a mount flag of %d bytes (%s); at most %d are allowed", len(f), quote(f), maxFlagLen)
		}
	}
	return nil
}
