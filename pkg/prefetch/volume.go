package prefetch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/peer/peerpb"
)

// Errors of PlanVolume about its input (the caller got something wrong),
// as opposed to errors reaching the ring or the metadata engine.
var (
	// ErrUnknownVolume: the cache nodes do not serve the volume.
	ErrUnknownVolume = errors.New("unknown volume")
	// ErrVolumeMismatch: the metadata URL is of another volume than the
	// one the cache nodes serve under that name.
	ErrVolumeMismatch = errors.New("volume mismatch")
)

// IsInputError tells whether err from PlanVolume is about its input: an
// unknown volume, a metadata URL of another volume, or a path that is
// missing, malformed, leads through a bad symlink or matches no file (see
// IsPathError).
func IsInputError(err error) bool {
	return errors.Is(err, ErrUnknownVolume) || errors.Is(err, ErrVolumeMismatch) || IsPathError(err)
}

// IsPathError tells whether err from NewPlan or PlanVolume is about a path:
// missing or malformed, through a symlink that dangles, loops or leads out
// of the volume, too costly to resolve (ErrResolveBudget), or matching no file.
func IsPathError(err error) bool {
	return errors.Is(err, juice.ErrPathNotFound) || errors.Is(err, juice.ErrInvalidPath) ||
		errors.Is(err, juice.ErrSymlinkLoop) || errors.Is(err, juice.ErrSymlinkOutside) ||
		errors.Is(err, juice.ErrSymlinkTarget) || errors.Is(err, juice.ErrResolveBudget) || errors.Is(err, ErrNoFiles)
}

// PlanVolume checks that the ring serves volume and that metaURL is its
// metadata engine, then resolves paths to a plan named after volume. It
// takes as long as the metadata engine needs for the paths (no deadline
// beyond ctx). Errors never contain metaURL.
func PlanVolume(ctx context.Context, cr *ClusterRing, metaURL, volume string, paths []string) (*Plan, error) {
	st, err := cr.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reach the ring: %w", err)
	}
	vi := FindVolume(st, volume)
	if vi == nil {
		var names []string
		for _, v := range st.Volumes {
			names = append(names, v.Name)
		}
		return nil, fmt.Errorf("%w %q: the cache nodes serve %s", ErrUnknownVolume, volume, strings.Join(names, ", "))
	}
	// A safety bound on reaching the metadata engine: real time, not a
	// clock.Clock, as it only keeps a dead engine from hanging the caller.
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	m, format, err := juice.OpenMeta(octx, metaURL)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", volume, err)
	}
	defer m.Shutdown()
	if format.UUID != vi.Uuid {
		return nil, fmt.Errorf("%w: the metadata url is of volume %q (uuid %s), but the cache nodes serve %q as uuid %s",
			ErrVolumeMismatch, format.Name, format.UUID, volume, vi.Uuid)
	}
	plan, err := NewPlan(ctx, m, format, paths)
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", volume, err)
	}
	plan.Volume = vi.Name
	return plan, nil
}

// FindVolume returns the volume a node's status lists by name or UUID, or
// nil.
func FindVolume(st *peerpb.StatusResponse, volume string) *peerpb.VolumeInfo {
	for _, v := range st.GetVolumes() {
		if v.Name == volume || v.Uuid == volume {
			return v
		}
	}
	return nil
}
