package csi

import (
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// within reports whether the clean path p is dir or under it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || dir == "/"
}

// resolveParent is p with the symlinks of its parent resolved, or p when
// the parent cannot be resolved (it does not exist).
func resolveParent(p string) string {
	parent, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return p
	}
	return filepath.Join(parent, filepath.Base(p))
}

// checkTarget checks a target path of a publish or unpublish and returns
// it clean. Targets are pod directories of the kubelet: strictly under
// <KubeletDir>/pods (also once the symlinks of its parent are resolved),
// and never the plugin's state dir, a path in it, or a parent of it (so
// that no request unmounts or hides a shared mount).
func (n *Node) checkTarget(p, field string) (string, error) {
	target, err := checkPath(p, field)
	if err != nil {
		return "", err
	}
	resolved := resolveParent(target)
	for _, t := range []string{target, resolved} {
		for _, sd := range n.stateDirs {
			if within(t, sd) || within(sd, t) {
				return "", status.Errorf(codes.InvalidArgument, "%s %s is the plugin's state directory, inside it or above it; targets are pod directories under %s", field, quote(target), n.podsDir)
			}
		}
	}
	inPods := func(t string) bool {
		for _, pd := range n.podsDirs {
			if t != pd && within(t, pd) {
				return true
			}
		}
		return false
	}
	if !inPods(target) || !inPods(resolved) {
		return "", status.Errorf(codes.InvalidArgument, "%s %s is not under the kubelet's pods directory %s (the node's --kubelet-dir)", field, quote(target), n.podsDir)
	}
	return target, nil
}

// withResolved is p, and p with its symlinks resolved when that differs.
func withResolved(p string) []string {
	out := []string{p}
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		out = append(out, r)
	}
	return out
}
