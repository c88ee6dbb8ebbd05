package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// driverNameRE is the CSI spec's rule for plugin names.
var driverNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$`)

func validateCommon(driverName, version string) error {
	if driverName != "" && !driverNameRE.MatchString(driverName) {
		return fmt.Errorf("driver name %q: want at most 63 characters, alphanumerics, '-' and '.', starting and ending alphanumeric", driverName)
	}
	if version == "" {
		return errors.New("version is required (GetPluginInfo reports it)")
	}
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ControllerOptions configures the controller service (with its identity
// service).
type ControllerOptions struct {
	// DriverName is the CSI driver name; "" means DriverName.
	DriverName string
	// Version is the driver version GetPluginInfo reports. Required.
	Version string
	// Checker checks that a model exists; nil means JuiceChecker{}.
	Checker Checker
	// PVCs reads PersistentVolumeClaims for pathPatterns that use
	// ${pvc.annotations[...]}. nil when the controller has no Kubernetes
	// API access: such patterns are then refused with FailedPrecondition.
	PVCs PVCReader
	// CheckTimeout bounds one metadata check or API read; 0 means 30s.
	CheckTimeout time.Duration
	// Logger receives the service's logs; nil discards them. Secrets and
	// request bodies are never logged.
	Logger *slog.Logger
}

// Validate checks the options.
func (o ControllerOptions) Validate() error {
	if err := validateCommon(o.DriverName, o.Version); err != nil {
		return fmt.Errorf("controller options: %w", err)
	}
	if o.CheckTimeout < 0 {
		return errors.New("controller options: CheckTimeout must not be negative")
	}
	return nil
}

// DefaultKubeletDir is the kubelet's usual root directory.
const DefaultKubeletDir = "/var/lib/kubelet"

// NodeOptions configures the node service (with its identity service).
type NodeOptions struct {
	// DriverName is the CSI driver name; "" means DriverName.
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
	// Launcher is a command prefix for mount processes, e.g.
	// ["nsenter", "--target", "1", "--mount", "--pid", "--"] so that they
	// run in the host's namespaces and outlive the plugin container.
	// With a launcher, MountBinary and TokenFile are copied into StateDir
	// first so that the paths handed to the mount process are valid in
	// the host's mount namespace. Empty: run them directly.
	Launcher []string
	// MountArgs are extra flags for `csi mount` (e.g. --owners 3).
	MountArgs []string
	// CacheNode is the peer address (host:port) of the cache node on this
	// host. Required.
	CacheNode string
	// TokenFile holds the cluster token the mounts and the probe use.
	// Required.
	TokenFile string
	// UnmountDelay is how long a shared JuiceFS mount stays after its last
	// target is unpublished, so that a restarting pod does not remount.
	// 0 unmounts at once.
	UnmountDelay time.Duration
	// MountTimeout bounds the start of a JuiceFS mount; 0 means 60s.
	MountTimeout time.Duration
	// CheckTimeout bounds one metadata check; 0 means 30s.
	CheckTimeout time.Duration
	// RepairInterval is how often broken shared mounts are repaired while
	// the plugin runs (they are always repaired at start and on publish);
	// 0 disables the periodic check.
	RepairInterval time.Duration
	// TrustedEngines, when not nil, lists the only JuiceFS volumes this
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
	// AllowRequestMetaURL lets a node without TrustedEngines mount the
	// metadata engine a publish request's secret names (off by default:
	// then such a node refuses every publish). Whoever writes a
	// node-publish secret, any pod author with inline volumes, then
	// chooses the engine; the URL must still pass ParseMetaIdentity and
	// match the engine of a shared mount already up.
	AllowRequestMetaURL bool
	// KubeletDir is the kubelet's root directory; "" means
	// DefaultKubeletDir. Publish and unpublish targets must be under its
	// pods directory.
	KubeletDir string
	// Checker checks that a model exists; nil means JuiceChecker{}.
	Checker Checker
	// Mounter does the mount work; nil means a SystemMounter.
	Mounter Mounter
	// CacheProbe tells whether the local cache node answers and has a
	// ring; nil means a Status call to CacheNode with the token.
	CacheProbe func(ctx context.Context) error
	// Logger receives the service's logs; nil discards them. Secrets and
	// request bodies are never logged.
	Logger *slog.Logger
}

// Validate checks the options.
func (o NodeOptions) Validate() error {
	err := func() error {
		if err := validateCommon(o.DriverName, o.Version); err != nil {
			return err
		}
		switch {
		case o.NodeID == "":
			return errors.New("NodeID is required")
		case len(o.NodeID) > maxIDLen:
			return fmt.Errorf("NodeID is longer than %d bytes", maxIDLen)
		case o.StateDir == "" || !filepath.IsAbs(o.StateDir):
			return errors.New("StateDir must be an absolute path")
		case o.MountBinary == "" || !filepath.IsAbs(o.MountBinary):
			return errors.New("MountBinary must be an absolute path")
		case o.CacheNode == "":
			return errors.New("CacheNode (the local cache node's peer address) is required")
		case o.TokenFile == "":
			return errors.New("TokenFile is required")
		case o.KubeletDir != "" && !filepath.IsAbs(o.KubeletDir):
			return errors.New("KubeletDir must be an absolute path")
		case o.UnmountDelay < 0, o.MountTimeout < 0, o.CheckTimeout < 0, o.RepairInterval < 0:
			return errors.New("durations must not be negative")
		}
		for v, u := range o.TrustedEngines {
			if !volumeNameRE.MatchString(v) || !strings.Contains(u, "://") {
				return fmt.Errorf("TrustedEngines: volume %q needs a JuiceFS volume name and a metadata URL", v)
			}
		}
		for _, a := range o.Launcher {
			if a == "" {
				return errors.New("Launcher has an empty word")
			}
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("node options: %w", err)
	}
	return nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
