package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
	"github.com/ringcache/ringcache/pkg/redact"
)

// Request is one run of a Warmup.
type Request struct {
	Namespace, Name string
	Volume          string
	Paths           []string
	Replicas        int
	Bandwidth       int64 // bytes/s, 0: none
	Concurrency     int   // 0: the default
}

// Outcome is what a run did.
type Outcome struct {
	prefetch.Result
	// FilesFailed are the files with at least one failed block.
	FilesFailed int
	// Resolved says where each path of the request led (through
	// symlinks) and how many files it matched.
	Resolved []juice.PathResolution
	// SkippedLinks counts the symlinks in the trees warmed that were not
	// followed (leading out of the tree, dangling or looping); Skipped
	// lists the first of them.
	SkippedLinks int
	Skipped      []juice.SkippedLink
}

// Summary describes the paths of the outcome in a few words for a status
// message: those that went through symlinks, as "/models/m/latest" ->
// "/models/m/v2", and the symlinks skipped. "" if there is nothing to say.
// Names from the volume are quoted and clipped (see juice.QuoteName), and the
// whole stays within MaxMessage bytes.
func (o *Outcome) Summary() string {
	var parts []string
	for _, r := range o.Resolved {
		if r.Followed() {
			parts = append(parts, juice.QuoteName(r.Path)+" -> "+juice.QuoteName(r.Resolved))
		}
	}
	const maxLinks = 5 // the message stays short; the log has them all
	if len(parts) > maxLinks {
		parts = append(parts[:maxLinks], fmt.Sprintf("and %d more paths through symlinks", len(parts)-maxLinks))
	}
	if o.SkippedLinks > 0 {
		s := fmt.Sprintf("%d symlinks skipped", o.SkippedLinks)
		if len(o.Skipped) > 0 {
			f := o.Skipped[0]
			s += fmt.Sprintf(" (first: %s -> %s: %s)", juice.QuoteName(f.Link), juice.QuoteName(f.Target), clip(strings.ToValidUTF8(f.Reason, "\uFFFD"), 2*juice.MaxQuotedName))
		}
		parts = append(parts, s)
	}
	return clip(strings.Join(parts, "; "), MaxMessage)
}

// Warmer runs warm-ups. Warm reports progress to onProgress while it runs
// and returns the outcome, or an error when the run could not start or ctx
// ended (the Outcome may still be non-nil then). Errors must not contain
// metadata URLs.
type Warmer interface {
	Warm(ctx context.Context, req Request, onProgress func(prefetch.Progress)) (*Outcome, error)
}

// ErrNoMetadataURL: no metadata URL is configured for the volume.
var ErrNoMetadataURL = errors.New("no metadata url")

// MetaURLSource gives the metadata URL of a volume.
type MetaURLSource interface {
	MetaURL(ctx context.Context, volume string) (string, error)
}

// DirSource reads metadata URLs from a directory laid out like "cachenode
// serve --volumes-dir" (a mounted Secret): one file per volume. Files are
// read at every run, so updates of the Secret are picked up.
type DirSource struct{ Dir string }

// MetaURL implements MetaURLSource.
func (s DirSource) MetaURL(_ context.Context, volume string) (string, error) {
	u, err := cli.ReadVolumeFile(s.Dir, volume)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w for volume %q in the volumes dir", ErrNoMetadataURL, volume)
	}
	return u, err
}

// SecretSource reads metadata URLs from a Secret: one key per volume,
// read through Reader (uncached) at every run.
type SecretSource struct {
	Reader client.Reader
	Secret types.NamespacedName
}

// MetaURL implements MetaURLSource.
func (s SecretSource) MetaURL(ctx context.Context, volume string) (string, error) {
	var sec corev1.Secret
	if err := s.Reader.Get(ctx, s.Secret, &sec); err != nil {
		return "", fmt.Errorf("%w for volume %q: secret %s: %v", ErrNoMetadataURL, volume, s.Secret, err)
	}
	u := strings.TrimSpace(string(sec.Data[volume]))
	if u == "" {
		return "", fmt.Errorf("%w for volume %q: secret %s has no key %q", ErrNoMetadataURL, volume, s.Secret, volume)
	}
	return u, nil
}

// ClusterWarmer runs warm-ups against the cache nodes reachable from
// Seeds, with the pkg/prefetch Executor.
type ClusterWarmer struct {
	Seeds    []string
	Token    []byte
	MetaURLs MetaURLSource
	// Options are the executor's options; Ring, Seeds, Token, Replicas,
	// Bandwidth, Concurrency and OnProgress are set per run.
	Options prefetch.Options
	Logger  *slog.Logger
}

// Warm implements Warmer.
func (w *ClusterWarmer) Warm(ctx context.Context, req Request, onProgress func(prefetch.Progress)) (*Outcome, error) {
	metaURL, err := w.MetaURLs.MetaURL(ctx, req.Volume)
	if err != nil {
		return nil, err
	}
	cr, err := prefetch.NewClusterRing(w.Token, w.Seeds...)
	if err != nil {
		return nil, err
	}
	defer cr.Close()
	plan, err := prefetch.PlanVolume(ctx, cr, metaURL, req.Volume, req.Paths)
	if err != nil {
		return nil, redact.Error(err, metaURL)
	}
	resolved := &Outcome{Resolved: plan.Resolved, SkippedLinks: plan.SkippedLinks, Skipped: plan.Skipped}
	o := w.Options
	o.Ring, o.Seeds, o.Token = cr, nil, nil
	o.Replicas, o.Bandwidth, o.Concurrency, o.OnProgress = req.Replicas, req.Bandwidth, req.Concurrency, onProgress
	if o.Logger == nil {
		o.Logger = w.Logger
	}
	if o.Logger != nil {
		o.Logger = o.Logger.With("warmup", req.Namespace+"/"+req.Name, "volume", req.Volume)
		for _, l := range plan.Links() {
			o.Logger.Info("path resolved through symlinks", "path", l)
		}
		for _, sl := range plan.Skipped {
			o.Logger.Warn("symlink skipped", "link", sl.Link, "target", sl.Target, "reason", sl.Reason)
		}
	}
	e, err := prefetch.New(o)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res, err := e.Run(ctx, plan)
	if res == nil {
		return nil, redact.Error(err, metaURL)
	}
	resolved.Result, resolved.FilesFailed = *res, filesFailed(plan, res)
	return resolved, redact.Error(err, metaURL)
}

// filesFailed counts the files of plan holding a block res gave up on.
func filesFailed(plan *prefetch.Plan, res *prefetch.Result) int {
	if len(res.Failed) == 0 {
		return 0
	}
	failed := map[string]bool{}
	for _, f := range res.Failed {
		failed[f.Key] = true
	}
	n := 0
	for _, f := range plan.Files {
		for _, b := range f.Blocks {
			if failed[b.Key] {
				n++
				break
			}
		}
	}
	return n
}

// reasonOf classifies an error of Warm that kept a run from starting.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrNoMetadataURL):
		return v1alpha1.ReasonNoMetadataURL
	case errors.Is(err, prefetch.ErrUnknownVolume), errors.Is(err, prefetch.ErrVolumeMismatch):
		return v1alpha1.ReasonUnknownVolume
	case prefetch.IsPathError(err):
		return v1alpha1.ReasonPathNotFound
	}
	return v1alpha1.ReasonRunFailed
}
