package prefetch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/juicedata/juicefs/pkg/meta"

	"github.com/ringcache/ringcache/pkg/juice"
)

// Plan is what a warm-up covers: the data blocks holding the visible bytes
// of some files of one volume.
type Plan struct {
	// Volume is the volume's name, for reports. NewPlan sets the name in
	// the volume's format; callers may set the name the cluster serves it
	// under instead.
	Volume string `json:"volume"`
	// VolumeUUID is the volume's UUID: nodes are asked by it and blocks
	// are placed on the ring by it (blockkey.Ring).
	VolumeUUID string `json:"volume_uuid"`
	// Paths are the paths the plan was made from, as given.
	Paths []string `json:"paths"`
	// Files are the regular files found, sorted by path, each with its
	// blocks.
	Files []juice.FileBlocks `json:"-"`
	// Blocks are the distinct blocks of Files.
	Blocks []juice.Block `json:"-"`
	// Bytes is the sum of the sizes of Blocks.
	Bytes int64 `json:"bytes"`
	// Resolved says, for each of Paths, where it led (through symlinks)
	// and how many files it matched.
	Resolved []juice.PathResolution `json:"resolved"`
	// SkippedLinks counts the symlinks in the trees walked that were not
	// followed (they lead out of the tree, dangle or loop); Skipped lists
	// the first juice.MaxSkippedLinks of them.
	SkippedLinks int                 `json:"skipped_links"`
	Skipped      []juice.SkippedLink `json:"skipped,omitempty"`
}

// ErrNoFiles is returned (wrapped, naming the path) by NewPlan for a path
// that matches no regular file: an empty directory, a FIFO, a tree whose
// symlinks all lead out of it. A warm-up of nothing is a mistake to report,
// not a success.
var ErrNoFiles = errors.New("matches no file")

// Links returns a line per path that went through symlinks, as
// "/models/m/latest -> /models/m/v2".
func (p *Plan) Links() []string {
	var out []string
	for _, r := range p.Resolved {
		if r.Followed() {
			out = append(out, r.Path+" -> "+r.Resolved)
		}
	}
	return out
}

// NewPlan resolves paths (absolute within the volume; files, or
// directories taken recursively; symlinks followed as juice.Resolve does)
// to their blocks with the volume's metadata client m and format (see
// juice.OpenMeta and juice.Resolve). A path that does not exist is an error
// wrapping juice.ErrPathNotFound and naming the path; a malformed one
// wraps juice.ErrInvalidPath; a symlink that leads out of the volume or
// loops wraps juice.ErrSymlinkOutside or juice.ErrSymlinkLoop (see
// IsInputError). A path that matches no regular file is an error wrapping
// ErrNoFiles.
func NewPlan(ctx context.Context, m meta.Meta, format *meta.Format, paths []string) (*Plan, error) {
	if len(paths) == 0 {
		return nil, errors.New("plan: no paths")
	}
	r, err := juice.Resolve(ctx, m, format, paths)
	if err != nil {
		return nil, err
	}
	for _, pr := range r.Paths {
		if pr.Files == 0 {
			return nil, noFilesError(pr, r.Skipped)
		}
	}
	return &Plan{
		Volume: format.Name, VolumeUUID: format.UUID, Paths: slices.Clone(paths),
		Files: r.Files, Blocks: r.Blocks, Bytes: r.Bytes,
		Resolved: r.Paths, SkippedLinks: r.SkippedLinks, Skipped: r.Skipped,
	}, nil
}

// noFilesError says that pr matched no file, where it led, and which
// symlinks in it were skipped.
func noFilesError(pr juice.PathResolution, skipped []juice.SkippedLink) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", pr.Path)
	if pr.Followed() {
		fmt.Fprintf(&b, " -> %s", pr.Resolved)
	}
	if pr.SkippedLinks > 0 {
		var first *juice.SkippedLink
		for i := range skipped {
			if within(pr.Resolved, skipped[i].Link) {
				first = &skipped[i]
				break
			}
		}
		fmt.Fprintf(&b, " (%s in it skipped", symlinks(pr.SkippedLinks))
		if first != nil {
			fmt.Fprintf(&b, ", e.g. %s -> %s: %s", first.Link, first.Target, first.Reason)
		}
		b.WriteString(")")
	}
	return fmt.Errorf("%s %w", b.String(), ErrNoFiles)
}

// symlinks says "1 symlink" or "n symlinks".
func symlinks(n int) string {
	if n == 1 {
		return "1 symlink"
	}
	return fmt.Sprintf("%d symlinks", n)
}

// within tells whether the clean absolute path p is root or below it.
func within(root, p string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}
