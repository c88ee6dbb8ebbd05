package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ringcache/ringcache/pkg/clock"
)

// driverNameRE is the CSI spec's rule for plugin names.
var driverNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$`)

// Defaults of the options' optional fields.
const (
	// DefaultKubeletDir is the kubelet's usual root directory.
	DefaultKubeletDir = "/var/lib/kubelet"
	// DefaultCheckTimeout bounds one metadata check or API read.
	DefaultCheckTimeout = 30 * time.Second
	// DefaultMountTimeout bounds the start of a shared JuiceFS mount.
	DefaultMountTimeout = 60 * time.Second
)

// validateCommon checks the fields both services have.
func validateCommon(driverName, version string) []error {
	var errs []error
	if driverName != "" && !driverNameRE.MatchString(driverName) {
		errs = append(errs, fmt.Errorf("driver name %q: want at most 63 characters, alphanumerics, '-' and '.', starting and ending alphanumeric", driverName))
	}
	if version == "" {
		errs = append(errs, errors.New("version is required (GetPluginInfo reports it)"))
	}
	return errs
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ControllerOptions configures the controller service (with its identity
// service).
type ControllerOptions struct {
	// DriverName is the CSI driver name. Default DriverName.
	DriverName string
	// Version is the driver version GetPluginInfo reports. Required.
	Version string
	// Checker checks that a model exists. Default JuiceChecker{}.
	Checker Checker
	// PVCs reads PersistentVolumeClaims for pathPatterns that use
	// ${pvc.annotations[...]}. nil when the controller has no Kubernetes
	// API access: such patterns are then refused with FailedPrecondition.
	PVCs PVCReader
	// CheckTimeout bounds one metadata check or API read. Default
	// DefaultCheckTimeout; negative is invalid.
	CheckTimeout time.Duration
	// Logger receives the service's logs. Default: discard. Secrets and
	// request bodies are never logged.
	Logger *slog.Logger
}

// EnsureDefaults sets every unset optional field to its default.
func (o *ControllerOptions) EnsureDefaults() {
	if o.DriverName == "" {
		o.DriverName = DriverName
	}
	if o.Checker == nil {
		o.Checker = JuiceChecker{}
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
}

// Validate checks the options without changing them; it reports every
// problem.
func (o *ControllerOptions) Validate() error {
	errs := validateCommon(o.DriverName, o.Version)
	if o.CheckTimeout < 0 {
		errs = append(errs, errors.New("CheckTimeout must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi: invalid controller options: %w", err)
	}
	return nil
}

// NodeOptions configures the node service (with its identity service).
type NodeOptions struct {
	// DriverName is the CSI driver name. Default DriverName.
	DriverName string
	// Version is the driver version GetPluginInfo reports. Required.
	Version string
	// NodeID is this node's ID for NodeGetInfo (the Kubernetes node
	// name). Required.
	NodeID string
	// StateDir holds the state file, the shared JuiceFS mounts, their
	// metadata URL files and logs. Absolute; required. In Kubernetes a
	// hostPath (the same path in the container and on the host) mounted
	// with Bidirectional propagation, e.g.
	// /var/lib/kubelet/plugins/csi.ringcache.io.
	StateDir string
	// MountBinary is the binary whose `mount` subcommand is the mount
	// process (the csi binary itself). Absolute; required.
	MountBinary string
	// Launcher is an optional command prefix for mount processes, e.g.
	// ["nsenter", "--target", "1", "--mount", "--pid", "--"] so that they
	// run in the host's namespaces and outlive the plugin container.
	// With a launcher, MountBinary and TokenFile are copied into StateDir
	// first so that the paths handed to the mount process are valid in
	// the host's mount namespace. Empty: run them directly.
	Launcher []string
	// MountArgs are extra flags for `csi mount` (e.g. --owners 3). Default
	// none.
	MountArgs []string
	// CacheNode is the peer address (host:port) of the cache node on this
	// host. Required.
	CacheNode string
	// TokenFile holds the cluster token the mounts and the probe use.
	// Required.
	TokenFile string
	// UnmountDelay is how long a shared JuiceFS mount stays after its last
	// target is unpublished, so that a restarting pod does not remount.
	// Default 0: unmount at once. Negative is invalid.
	UnmountDelay time.Duration
	// MountTimeout bounds the start of a JuiceFS mount. Default
	// DefaultMountTimeout; negative is invalid.
	MountTimeout time.Duration
	// CheckTimeout bounds one metadata check. Default
	// DefaultCheckTimeout; negative is invalid.
	CheckTimeout time.Duration
	// RepairInterval is how often broken shared mounts are repaired while
	// the plugin runs (they are always repaired at start and on publish).
	// Default 0: no periodic check. Negative is invalid.
	RepairInterval time.Duration
	// TrustedEngines, when not nil (the default), lists the only JuiceFS volumes this
	// node mounts and their metadata engines: volume name → metadata URL.
	// A configured volume is always mounted with this URL; a publish only
	// names the volume, and a metadata URL in its secret, if any, must
	// name the same engine by ParseMetaIdentity (passwords aside), or the
	// publish is PermissionDenied, as is a publish of another volume.
	// Without it (and without AllowRequestMetaURL) the node mounts
	// nothing: whoever writes a node-publish secret (any pod author, with
	// inline volumes) would choose the engine, and a copied format with the
	// volume's UUID would let its metadata name any block the ring holds.
	TrustedEngines map[string]string
	// AllowRequestMetaURL (default false) lets a node without TrustedEngines mount the
	// metadata engine a publish request's secret names (off by default:
	// then such a node refuses every publish). Whoever writes a
	// node-publish secret, any pod author with inline volumes, then
	// chooses the engine; the URL must still pass ParseMetaIdentity and
	// match the engine of a shared mount already up.
	AllowRequestMetaURL bool
	// KubeletDir is the kubelet's root directory, absolute. Default
	// DefaultKubeletDir. Publish and unpublish targets must be under its
	// pods directory.
	KubeletDir string
	// Checker checks that a model exists. Default JuiceChecker{}.
	Checker Checker
	// Clock decides the idle unmounts, the periodic repair and the stats
	// timeout. Default clock.Real().
	Clock clock.Clock
	// Mounter does the mount work. Default a SystemMounter on Clock.
	Mounter Mounter
	// CacheProbe tells whether the local cache node answers and has a
	// ring. Default: a Status call to CacheNode with the token of
	// TokenFile.
	CacheProbe func(ctx context.Context) error
	// Logger receives the service's logs. Default: discard. Secrets and
	// request bodies are never logged.
	Logger *slog.Logger
}

// EnsureDefaults sets every unset optional field to its default.
func (o *NodeOptions) EnsureDefaults() {
	if o.DriverName == "" {
		o.DriverName = DriverName
	}
	if o.MountTimeout == 0 {
		o.MountTimeout = DefaultMountTimeout
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.KubeletDir == "" {
		o.KubeletDir = DefaultKubeletDir
	}
	if o.Checker == nil {
		o.Checker = JuiceChecker{}
	}
	o.Clock = clock.Or(o.Clock)
	if o.Mounter == nil {
		o.Mounter = &SystemMounter{Clock: o.Clock}
	}
	if o.CacheProbe == nil {
		addr, tokenFile := o.CacheNode, o.TokenFile
		o.CacheProbe = func(ctx context.Context) error { return probeCacheNode(ctx, addr, tokenFile) }
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
}

// Validate checks the options without changing them; it reports every
// problem.
func (o *NodeOptions) Validate() error {
	errs := validateCommon(o.DriverName, o.Version)
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case o.NodeID == "":
		add("NodeID is required")
	case len(o.NodeID) > maxIDLen:
		add("NodeID is longer than %d bytes", maxIDLen)
	}
	if o.StateDir == "" || !filepath.IsAbs(o.StateDir) {
		add("StateDir must be an absolute path")
	}
	if o.MountBinary == "" || !filepath.IsAbs(o.MountBinary) {
		add("MountBinary must be an absolute path")
	}
	if o.CacheNode == "" {
		add("CacheNode (the local cache node's peer address) is required")
	}
	if o.TokenFile == "" {
		add("TokenFile is required")
	}
	if o.KubeletDir != "" && !filepath.IsAbs(o.KubeletDir) {
		add("KubeletDir must be an absolute path")
	}
	if o.UnmountDelay < 0 || o.MountTimeout < 0 || o.CheckTimeout < 0 || o.RepairInterval < 0 {
		add("durations must not be negative")
	}
	for _, v := range sortedKeys(o.TrustedEngines) {
		if u := o.TrustedEngines[v]; !volumeNameRE.MatchString(v) || !strings.Contains(u, "://") {
			add("TrustedEngines: volume %q needs a JuiceFS volume name and a metadata URL", v)
		}
	}
	for _, a := range o.Launcher {
		if a == "" {
			add("Launcher has an empty word")
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("csi: invalid node options: %w", err)
	}
	return nil
}
