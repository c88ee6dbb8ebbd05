package juice_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/pkg/juice"
)

// FuzzResolveSymlinkTarget checks the checks on symlink targets (empty,
// too long, NUL: refused with ErrSymlinkTarget, as Resolve refuses them)
// and their lexical reading, which is what Resolve's physical walk gives
// when no component is a symlink: a result is clean, absolute and free of
// "..", equals what path.Join makes of the same directory and target, and
// never comes from a target that climbs above the root; refusals carry a
// sentinel.
func FuzzResolveSymlinkTarget(f *testing.F) {
	for _, s := range [][2]string{
		{"/models/m", "v2"},
		{"/models/m", "/models/m/v2"},
		{"/models/m", "../m/./v2/"},
		{"/models/m", "../../../etc"},
		{"/", ".."},
		{"/", "/../x"},
		{"/a", ""},
		{"/a", "b\x00c"},
		{"/a/b/c", "../../.."},
		{"relative", "x"},
		{"/a", "//x//y/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, dir, target string) {
		got, err := juice.ResolveSymlinkTarget(dir, target)
		if err != nil {
			if !errors.Is(err, juice.ErrSymlinkOutside) && !errors.Is(err, juice.ErrSymlinkTarget) && !errors.Is(err, juice.ErrInvalidPath) {
				t.Fatalf("(%q, %q): error without a sentinel: %v", dir, target, err)
			}
			if errors.Is(err, juice.ErrSymlinkOutside) && !climbs(dir, target) {
				t.Fatalf("(%q, %q): refused as outside, but it does not climb: %v", dir, target, err)
			}
			return
		}
		if !strings.HasPrefix(got, "/") || path.Clean(got) != got {
			t.Fatalf("(%q, %q) = %q: not clean and absolute", dir, target, got)
		}
		for _, c := range strings.Split(got, "/") {
			if c == ".." {
				t.Fatalf("(%q, %q) = %q: holds ..", dir, target, got)
			}
		}
		want := path.Join(dir, target)
		if strings.HasPrefix(target, "/") {
			want = path.Clean(target)
		}
		if got != want {
			t.Fatalf("(%q, %q) = %q, path.Join makes %q", dir, target, got, want)
		}
		if climbs(dir, target) {
			t.Fatalf("(%q, %q) = %q: climbs above the root, yet accepted", dir, target, got)
		}
		if len(target) == 0 || len(target) > juice.MaxSymlinkTarget || strings.ContainsRune(target, 0) {
			t.Fatalf("(%q, %q) = %q: target should be refused", dir, target, got)
		}
		if len(got) > len(dir)+len(target)+1 {
			t.Fatalf("(%q, %q) = %q: longer than its inputs", dir, target, got)
		}
	})
}

// climbs tells whether the target, read from dir (cleaned; assumed
// absolute), has a ".." at the root: an independent model of the check.
func climbs(dir, target string) bool {
	depth := 0
	if !strings.HasPrefix(target, "/") {
		for _, c := range strings.Split(path.Clean("/"+dir), "/") {
			if c != "" {
				depth++
			}
		}
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth == 0 {
				return true
			}
			depth--
		default:
			depth++
		}
	}
	return false
}
