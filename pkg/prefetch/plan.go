package prefetch

import (
	"context"
	"errors"
	"slices"

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
	// are placed on the ring by it (peer.RingKey).
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
}

// NewPlan resolves paths (absolute within the volume; files, or
// directories taken recursively) to their blocks with the volume's
// metadata client m and format (see juice.OpenMeta and juice.Resolve). A
// path that does not exist is an error wrapping juice.ErrPathNotFound and
// naming the path; a malformed one wraps juice.ErrInvalidPath.
func NewPlan(ctx context.Context, m meta.Meta, format *meta.Format, paths []string) (*Plan, error) {
	if len(paths) == 0 {
		return nil, errors.New("plan: no paths")
	}
	r, err := juice.Resolve(ctx, m, format, paths)
	if err != nil {
		return nil, err
	}
	return &Plan{
		Volume: format.Name, VolumeUUID: format.UUID, Paths: slices.Clone(paths),
		Files: r.Files, Blocks: r.Blocks, Bytes: r.Bytes,
	}, nil
}
