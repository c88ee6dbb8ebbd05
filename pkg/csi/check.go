package csi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/redact"
)

// Model is a model: a directory inside a named JuiceFS volume.
type Model struct {
	Volume string // the JuiceFS volume's name (its format name)
	Path   string // clean and absolute within the volume
}

// ModelInfo is what a Checker learned about a model's volume.
type ModelInfo struct {
	UUID string // the JuiceFS volume's UUID
}

// Checker checks models against a volume's metadata engine.
type Checker interface {
	// Check opens the metadata engine at metaURL and checks that it
	// holds the JuiceFS volume m.Volume and that m.Path is a directory in
	// it reached without symlinks. Errors are gRPC status errors
	// (InvalidArgument, NotFound, FailedPrecondition, Unavailable,
	// DeadlineExceeded) whose messages never contain metaURL.
	Check(ctx context.Context, metaURL string, m Model) (ModelInfo, error)
}

// JuiceChecker is the Checker that reads the JuiceFS metadata engine with
// the JuiceFS v1.3.1 libraries (pkg/juice). It opens a read-only client
// per check and closes it again.
type JuiceChecker struct{}

// Check implements Checker.
func (JuiceChecker) Check(ctx context.Context, metaURL string, m Model) (ModelInfo, error) {
	mc, format, err := juice.OpenMetaGuarded(ctx, metaURL)
	if err != nil {
		msg := scrub(err, metaURL)
		switch {
		case errors.Is(err, juice.ErrBadMetaURL), errors.Is(err, juice.ErrMetaRejected):
			return ModelInfo{}, status.Errorf(codes.InvalidArgument, "the secret's %s is not usable: %s", KeyMetaURL, msg)
		case errors.Is(err, juice.ErrNotFormatted):
			return ModelInfo{}, status.Errorf(codes.InvalidArgument, "the secret's %s names a metadata engine that holds no JuiceFS volume", KeyMetaURL)
		case errors.Is(err, context.DeadlineExceeded):
			return ModelInfo{}, status.Errorf(codes.DeadlineExceeded, "metadata engine of volume %q: %s", m.Volume, msg)
		case errors.Is(err, context.Canceled):
			return ModelInfo{}, status.Errorf(codes.Canceled, "metadata engine of volume %q: %s", m.Volume, msg)
		}
		return ModelInfo{}, status.Errorf(codes.Unavailable, "metadata engine of volume %q: %s", m.Volume, msg)
	}
	defer mc.Shutdown()
	if format.Name != m.Volume {
		return ModelInfo{}, status.Errorf(codes.InvalidArgument, "the secret's %s belongs to JuiceFS volume %q, not %q", KeyMetaURL, format.Name, m.Volume)
	}
	if format.Shards > 1 {
		return ModelInfo{}, status.Errorf(codes.FailedPrecondition, "volume %q is sharded over %d buckets; ringcache mounts do not support sharded volumes", m.Volume, format.Shards)
	}
	if _, err := juice.LookupDir(ctx, mc, m.Path); err != nil {
		msg := scrub(err, metaURL)
		switch {
		case errors.Is(err, juice.ErrPathNotFound):
			return ModelInfo{}, status.Errorf(codes.NotFound, "model path %q does not exist in volume %q (%s)", m.Path, m.Volume, msg)
		case errors.Is(err, juice.ErrSymlink):
			return ModelInfo{}, status.Errorf(codes.InvalidArgument, "model path %q in volume %q is refused: %s (symlinks in a model path could lead out of it)", m.Path, m.Volume, msg)
		case errors.Is(err, juice.ErrNotDir):
			return ModelInfo{}, status.Errorf(codes.InvalidArgument, "model path %q in volume %q must be a directory: %s", m.Path, m.Volume, msg)
		case errors.Is(err, juice.ErrInvalidPath):
			return ModelInfo{}, status.Errorf(codes.InvalidArgument, "model path %q: %s", m.Path, msg)
		case errors.Is(err, context.DeadlineExceeded):
			return ModelInfo{}, status.Errorf(codes.DeadlineExceeded, "looking up %q in volume %q: %s", m.Path, m.Volume, msg)
		}
		return ModelInfo{}, status.Errorf(codes.Unavailable, "looking up %q in volume %q: %s", m.Path, m.Volume, msg)
	}
	return ModelInfo{UUID: format.UUID}, nil
}

// scrub returns err's message with each secret, and every secret part of
// it (a URL's password, secret query values), replaced: the one redaction
// rule, pkg/redact.
func scrub(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	return redact.String(err.Error(), secrets...)
}
