package csi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DriverName is the CSI driver's name, as in the CSIDriver object and in
// every PersistentVolume's spec.csi.driver.
const DriverName = "csi.ringcache.io"

// Keys of StorageClass parameters, volume context / volume attributes and
// secrets.
const (
	// KeyVolume names the JuiceFS volume (its format name), in StorageClass
	// parameters and in the volume context.
	KeyVolume = "volume"
	// KeyPath is the model path inside the volume, in the volume context.
	KeyPath = "path"
	// KeyPathPattern is the StorageClass parameter that makes a model path
	// from the PVC (see expandPattern).
	KeyPathPattern = "pathPattern"
	// KeyAllowedPrefix confines a StorageClass (parameter) or a secret
	// (controller or node-publish secret) to one subtree of the volume.
	KeyAllowedPrefix = "allowedPrefix"
	// KeyMetaURL is the secret key holding the volume's metadata URL.
	KeyMetaURL = "metaurl"

	// Parameters the external-provisioner adds with --extra-create-metadata.
	keyPVCName      = "csi.storage.k8s.io/pvc/name"
	keyPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	keyPVName       = "csi.storage.k8s.io/pv/name"
)

// maxIDLen is CSI's size limit for string fields, volume IDs included.
const maxIDLen = 128

// juicefsInternal are the names a JuiceFS mount shows (or resolves) in the
// volume root that are not model data.
var juicefsInternal = []string{".trash", ".accesslog", ".stats", ".config", ".control"}

// volumeNameRE is JuiceFS's rule for volume names (juicefs format).
var volumeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// validateVolumeName checks a JuiceFS volume name; where says which field
// it came from.
func validateVolumeName(name, where string) error {
	if name == "" {
		return status.Errorf(codes.InvalidArgument, "%s %q is required (the JuiceFS volume name)", where, KeyVolume)
	}
	if !volumeNameRE.MatchString(name) {
		return status.Errorf(codes.InvalidArgument, "%s %q: %q is not a JuiceFS volume name (3-63 characters: a-z, 0-9, '-')", where, KeyVolume, name)
	}
	return nil
}

// cleanVolumePath checks p, a path inside a JuiceFS volume, and returns it
// in canonical form: absolute, no empty or "." components. It refuses, with
// InvalidArgument, paths that are relative, contain "..", control
// characters or over-long components, and (unless root is allowed) the
// volume root and JuiceFS's internal entries.
func cleanVolumePath(p, what string, allowRoot bool) (string, error) {
	if p == "" {
		return "", status.Errorf(codes.InvalidArgument, "%s is required", what)
	}
	if len(p) > 4096 {
		return "", status.Errorf(codes.InvalidArgument, "%s is longer than 4096 bytes", what)
	}
	if strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return "", status.Errorf(codes.InvalidArgument, "%s %q contains control characters", what, p)
	}
	if !strings.HasPrefix(p, "/") {
		return "", status.Errorf(codes.InvalidArgument, "%s %q must be absolute within the volume (\"/\" is the volume root)", what, p)
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
		case c == "..":
			return "", status.Errorf(codes.InvalidArgument, "%s %q must not contain \"..\"", what, p)
		case len(c) > 255:
			return "", status.Errorf(codes.InvalidArgument, "%s %q has a component longer than 255 bytes", what, p)
		default:
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		if allowRoot {
			return "/", nil
		}
		return "", status.Errorf(codes.InvalidArgument, "%s %q names the volume root; name a model directory inside it", what, p)
	}
	if !allowRoot && slices.Contains(juicefsInternal, parts[0]) {
		return "", status.Errorf(codes.InvalidArgument, "%s %q names JuiceFS's internal %s, not model data", what, p, parts[0])
	}
	return "/" + strings.Join(parts, "/"), nil
}

// checkPrefix refuses, with PermissionDenied, a clean path outside the clean
// prefix. An empty prefix allows everything.
func checkPrefix(p, prefix, source string) error {
	if prefix == "" || prefix == "/" {
		return nil
	}
	if p == prefix || strings.HasPrefix(p, prefix+"/") {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "path %q is outside %s %q", p, source, prefix)
}

// readOnlyModes are the access modes a model volume supports.
var readOnlyModes = map[csi.VolumeCapability_AccessMode_Mode]bool{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY: true,
	csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:  true,
}

// allowedMountFlags are the mount flags a capability may carry; the bind
// mount into a target is always read-only, nosuid and nodev.
var allowedMountFlags = map[string]bool{"ro": true, "nosuid": true, "nodev": true, "noexec": true}

// capabilityError is why cap is not supported, or "" when it is: mount
// access with a read-only access mode, fsType "" or "juicefs", mount flags
// from allowedMountFlags, no volume mount group.
func capabilityError(vc *csi.VolumeCapability) string {
	if vc == nil {
		return "a volume capability is empty"
	}
	mode := vc.GetAccessMode().GetMode()
	switch {
	case vc.GetAccessMode() == nil:
		return "a volume capability has no access mode"
	case !readOnlyModes[mode]:
		return fmt.Sprintf("access mode %s is not supported: models are read-only (use SINGLE_NODE_READER_ONLY or MULTI_NODE_READER_ONLY, in Kubernetes ReadOnlyMany)", mode)
	}
	switch at := vc.GetAccessType().(type) {
	case *csi.VolumeCapability_Mount:
		m := at.Mount
		if fs := m.GetFsType(); fs != "" && fs != "juicefs" {
			return fmt.Sprintf("fsType %q is not supported (leave it empty or use \"juicefs\")", fs)
		}
		for _, f := range m.GetMountFlags() {
			if !allowedMountFlags[f] {
				return fmt.Sprintf("mount flag %q is not supported (allowed: ro, nosuid, nodev, noexec)", f)
			}
		}
		if m.GetVolumeMountGroup() != "" {
			return "volume mount groups are not supported"
		}
	case *csi.VolumeCapability_Block:
		return "block access is not supported: a model is a directory"
	default:
		return "a volume capability has no access type (mount is required)"
	}
	return ""
}

// validateCapabilities checks a request's capabilities and returns
// InvalidArgument for the first unsupported one.
func validateCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	if len(caps) > maxMountFlags {
		return status.Errorf(codes.InvalidArgument, "%d volume capabilities; at most %d are allowed", len(caps), maxMountFlags)
	}
	for _, vc := range caps {
		if err := checkMountFlags(vc.GetMount().GetMountFlags()); err != nil {
			return err
		}
		if msg := capabilityError(vc); msg != "" {
			return status.Error(codes.InvalidArgument, msg)
		}
	}
	return nil
}

// metaURLFrom returns the metadata URL from secrets. what names the secret
// for the error; the secret's value never appears in an error.
func metaURLFrom(secrets map[string]string, what string) (string, error) {
	u := strings.TrimSpace(secrets[KeyMetaURL])
	if u == "" {
		return "", status.Errorf(codes.InvalidArgument, "the %s must hold the volume's metadata URL under key %q", what, KeyMetaURL)
	}
	if !strings.Contains(u, "://") {
		return "", status.Errorf(codes.InvalidArgument, "the %s key %q is not a metadata URL (want e.g. redis://host:6379/1)", what, KeyMetaURL)
	}
	return u, nil
}

// secretPrefix returns the clean allowedPrefix a secret carries, if any.
func secretPrefix(secrets map[string]string, what string) (string, error) {
	p, ok := secrets[KeyAllowedPrefix]
	if !ok {
		return "", nil
	}
	return cleanVolumePath(p, what+" key "+KeyAllowedPrefix, true)
}

// isKubernetesKey reports whether a volume context key was added by
// Kubernetes (kubelet's pod info, the external-provisioner's identity)
// rather than by a user.
func isKubernetesKey(k string) bool {
	return strings.HasPrefix(k, "csi.storage.k8s.io/") || strings.HasPrefix(k, "storage.kubernetes.io/")
}

// parseVolumeContext reads a volume context (CreateVolume's output, a static
// PV's volumeAttributes or an inline volume's attributes): it must name the
// volume and the path, and hold no other keys than Kubernetes' own.
func parseVolumeContext(vc map[string]string) (Model, error) {
	for k := range vc {
		if k != KeyVolume && k != KeyPath && !isKubernetesKey(k) {
			return Model{}, status.Errorf(codes.InvalidArgument, "volume context key %q is unknown (want %q and %q)", k, KeyVolume, KeyPath)
		}
	}
	if err := validateVolumeName(vc[KeyVolume], "volume context"); err != nil {
		return Model{}, err
	}
	p, err := cleanVolumePath(vc[KeyPath], "volume context "+KeyPath, false)
	if err != nil {
		return Model{}, err
	}
	return Model{Volume: vc[KeyVolume], Path: p}, nil
}
