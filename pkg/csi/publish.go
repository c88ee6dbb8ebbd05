package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publishRequest is a validated NodePublishVolume request.
type publishRequest struct {
	id, target string
	engine     engine
	model      Model
	flags      BindFlags
}

// validatePublish checks everything of a publish request before any work:
// bounds of every string, the target's confinement, the capability, the
// model, the allowed prefix and the choice of metadata engine (see
// chooseEngine). It has no side effects.
func (n *Node) validatePublish(req *csi.NodePublishVolumeRequest) (*publishRequest, error) {
	if err := checkID(req.GetVolumeId(), "volume ID"); err != nil {
		return nil, err
	}
	if err := checkMap(req.GetVolumeContext(), "volume context", false); err != nil {
		return nil, err
	}
	if err := checkMap(req.GetSecrets(), "node-publish secret", true); err != nil {
		return nil, err
	}
	if err := checkMap(req.GetPublishContext(), "publish context", false); err != nil {
		return nil, err
	}
	if len(req.GetStagingTargetPath()) > maxPathLen {
		return nil, status.Errorf(codes.InvalidArgument, "staging target path is %d bytes long; at most %d are allowed", len(req.GetStagingTargetPath()), maxPathLen)
	}
	target, err := n.checkTarget(req.GetTargetPath(), "target path")
	if err != nil {
		return nil, err
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if err := checkMountFlags(req.GetVolumeCapability().GetMount().GetMountFlags()); err != nil {
		return nil, err
	}
	if msg := capabilityError(req.GetVolumeCapability()); msg != "" {
		return nil, status.Error(codes.InvalidArgument, msg)
	}
	if req.GetStagingTargetPath() != "" {
		return nil, status.Error(codes.InvalidArgument, "staging target path given, but this plugin does not stage volumes (no STAGE_UNSTAGE_VOLUME)")
	}
	model, err := parseVolumeContext(req.GetVolumeContext())
	if err != nil {
		return nil, err
	}
	if u, ok := req.GetSecrets()[KeyMetaURL]; ok && strings.TrimSpace(u) != "" && !strings.Contains(u, "://") {
		return nil, status.Errorf(codes.InvalidArgument, "the node-publish secret key %q is not a metadata URL (want e.g. redis://host:6379/1)", KeyMetaURL)
	}
	prefix, err := secretPrefix(req.GetSecrets(), "node-publish secret")
	if err != nil {
		return nil, err
	}
	if err := checkPrefix(model.Path, prefix, "the node-publish secret's "+KeyAllowedPrefix); err != nil {
		return nil, err
	}
	eng, err := n.chooseEngine(model.Volume, req.GetSecrets())
	if err != nil {
		return nil, err
	}
	pr := &publishRequest{id: req.GetVolumeId(), target: target, engine: eng, model: model}
	for _, f := range req.GetVolumeCapability().GetMount().GetMountFlags() {
		if f == "noexec" {
			pr.flags.NoExec = true
		}
	}
	return pr, nil
}

// NodePublishVolume implements csi.NodeServer: it checks the model in the
// volume's metadata, makes sure the volume's shared JuiceFS mount is up
// (mounting or repairing it) and bind-mounts the model read-only at the
// target. The mount is read-only whatever the readonly flag says: models
// are read-only. Publishing the same volume at the same target again is a
// no-op. Nothing is persisted (state, metadata URL file) before the bind
// is in place; a publish that fails leaves the node as it was.
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	pr, err := n.validatePublish(req)
	if err != nil {
		n.log.Info("publish refused", "code", status.Code(err).String(), "error", status.Convert(err).Message())
		return nil, err
	}
	release, err := n.busy.acquire(pr.id, "volume")
	if err != nil {
		return nil, err
	}
	defer release()
	start := time.Now()
	if done, err := n.alreadyPublished(pr); done || err != nil {
		return &csi.NodePublishVolumeResponse{}, err
	}
	// A request's engine must be that of the volume's shared mount, if
	// one is up: refuse before the check dials it. (ensureStaging checks
	// again under the volume lock.)
	if err := n.checkRequestEngine(pr); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, n.o.CheckTimeout)
	info, err := n.checker.Check(cctx, pr.engine.url, pr.model)
	cancel()
	if err != nil {
		n.log.Warn("publish refused", "id", pr.id, "volume", pr.model.Volume, "path", pr.model.Path, "target", pr.target,
			"engine", pr.engine.address(), "code", status.Code(err).String(), "error", scrub(err, pr.engine.url))
		return nil, err
	}
	unlock := n.lockVolume(pr.model.Volume)
	defer unlock()
	if done, err := n.alreadyPublished(pr); done || err != nil {
		return &csi.NodePublishVolumeResponse{}, err
	}
	sm, fresh, err := n.ensureStaging(ctx, pr, info.UUID)
	if err != nil {
		return nil, err
	}
	if err := n.bindTarget(sm, pr, fresh); err != nil {
		if fresh {
			n.discardStaging(sm)
		}
		return nil, err
	}
	n.log.Info("published", "id", pr.id, "volume", pr.model.Volume, "path", pr.model.Path, "target", pr.target,
		"engine", pr.engine.address(), "new_shared_mount", fresh, "took", time.Since(start).Round(time.Millisecond).String())
	return &csi.NodePublishVolumeResponse{}, nil
}

// checkRequestEngine refuses, with PermissionDenied, a request's engine
// (AllowRequestMetaURL) other than the one the volume's shared mount was
// made from.
func (n *Node) checkRequestEngine(pr *publishRequest) error {
	if !pr.engine.fromRequest {
		return nil
	}
	n.mu.Lock()
	sm := n.state.Mounts[pr.model.Volume]
	n.mu.Unlock()
	if sm == nil {
		return nil
	}
	if err := checkMountEngine(sm, pr.engine); errors.Is(err, errOtherEngine) {
		return status.Errorf(codes.PermissionDenied, "the node-publish secret's %s names another metadata engine (%s) than the one volume %q is mounted from on this node", KeyMetaURL, pr.engine.address(), pr.model.Volume)
	}
	return nil
}

// alreadyPublished reports whether the request is already done (the same
// volume and model at the target, its bind healthy), or an error when the
// target holds another volume.
func (n *Node) alreadyPublished(pr *publishRequest) (bool, error) {
	n.mu.Lock()
	sm, t := n.state.findTarget(pr.target)
	n.mu.Unlock()
	if t == nil {
		return false, nil
	}
	if t.VolumeID != pr.id || sm.Volume != pr.model.Volume || t.Path != pr.model.Path {
		return false, status.Errorf(codes.AlreadyExists, "target %q already holds volume %q (%s:%s)", pr.target, t.VolumeID, sm.Volume, t.Path)
	}
	if t.NoExec != pr.flags.NoExec {
		return false, status.Errorf(codes.AlreadyExists, "volume %q is already published at %q with other mount flags", pr.id, pr.target)
	}
	if err := checkMountEngine(sm, pr.engine); err != nil {
		return false, status.Errorf(codes.PermissionDenied, "volume %q is mounted on this node from another metadata engine than the request names", pr.model.Volume)
	}
	return n.mounter.Health(pr.target) == MountHealthy && n.mounter.Health(sm.Dir) == MountHealthy, nil
}

// ensureStaging returns the volume's shared mount, repairing it when
// needed, or starts a new one; fresh tells that the mount is new and not in
// the state yet (bindTarget records it, or the caller discards it). The
// volume lock is held.
func (n *Node) ensureStaging(ctx context.Context, pr *publishRequest, uuid string) (*stagingState, bool, error) {
	volume := pr.model.Volume
	n.mu.Lock()
	sm := n.state.Mounts[volume]
	n.mu.Unlock()
	if sm != nil {
		if sm.UUID != uuid {
			return nil, false, status.Errorf(codes.FailedPrecondition, "volume %q is mounted on this node from the JuiceFS volume with UUID %s, but the metadata engine names UUID %s", volume, sm.UUID, uuid)
		}
		// The shared mount serves everyone who names the volume, so it
		// must have been made from the engine of this publish: a
		// look-alike engine (a copied format with the same name and
		// UUID) must not get at this volume's data, nor this volume's
		// mount at the look-alike's.
		switch err := checkMountEngine(sm, pr.engine); {
		case errors.Is(err, errOtherEngine) && !pr.engine.fromRequest:
			// Made from another engine than the node's own (a volume
			// reconfigured on the node): remount from the node's.
			n.log.Warn("shared mount was made from another metadata engine than the node's; remounting", "volume", volume, "engine", pr.engine.address())
			if err := n.remount(ctx, sm); err != nil {
				return nil, false, err
			}
			return sm, false, nil
		case errors.Is(err, errOtherEngine):
			return nil, false, status.Errorf(codes.PermissionDenied, "the node-publish secret's %s names another metadata engine (%s) than the one volume %q is mounted from on this node", KeyMetaURL, pr.engine.address(), volume)
		case err != nil:
			return nil, false, status.Errorf(codes.Internal, "volume %q: %v", volume, err)
		}
		switch h := n.mounter.Health(sm.Dir); h {
		case MountHealthy, MountUnresponsive:
			if h == MountHealthy && !n.mounter.ProcessAlive(sm.proc(), sm.Dir) {
				n.log.Warn("shared mount answers but its mount process is gone; remounting", "volume", volume, "dir", sm.Dir, "pid", sm.PID)
				if err := n.remount(ctx, sm); err != nil {
					return nil, false, err
				}
			}
			return sm, false, nil
		default:
			n.log.Warn("shared mount is "+h.String()+"; remounting", "volume", volume, "dir", sm.Dir)
			if err := n.remount(ctx, sm); err != nil {
				return nil, false, err
			}
			return sm, false, nil
		}
	}
	volDir := filepath.Join(n.o.StateDir, "volumes", volume)
	sm = &stagingState{
		Volume: volume, UUID: uuid,
		Dir:         filepath.Join(volDir, "mnt"),
		MetaURLFile: filepath.Join(volDir, "meta-url"),
		LogFile:     filepath.Join(volDir, "mount.log"),
		Targets:     map[string]*targetState{},
	}
	// Whatever a crash left mounted there goes first.
	if err := n.mounter.StopFUSE(sm.Dir, Proc{}); err != nil {
		return nil, false, status.Errorf(codes.Internal, "clear %s: %v", sm.Dir, err)
	}
	if err := os.MkdirAll(sm.Dir, 0o755); err != nil {
		return nil, false, status.Errorf(codes.Internal, "create %s: %v", sm.Dir, err)
	}
	if err := os.Chmod(volDir, 0o700); err != nil {
		return nil, false, status.Errorf(codes.Internal, "chmod %s: %v", volDir, err)
	}
	// The mount process reads the URL from this file. The volume is not
	// in the state yet: if the publish fails, discardStaging removes it,
	// and after a crash cleanLeftovers does.
	if err := writeSecretFile(sm.MetaURLFile, pr.engine.url); err != nil {
		return nil, false, status.Errorf(codes.Internal, "write the metadata URL file: %v", err)
	}
	proc, err := n.startMount(ctx, sm, pr.engine.url)
	if err != nil {
		n.discardStaging(sm)
		return nil, false, err
	}
	sm.setProc(proc)
	n.log.Info("shared mount started", "volume", volume, "uuid", uuid, "dir", sm.Dir, "pid", proc.PID, "engine", pr.engine.address())
	return sm, true, nil
}

// discardStaging stops a fresh shared mount that no publish recorded and
// removes its files. The volume lock is held.
func (n *Node) discardStaging(sm *stagingState) {
	if err := n.mounter.StopFUSE(sm.Dir, sm.proc()); err != nil {
		n.log.Error("stop the shared mount of a failed publish", "volume", sm.Volume, "error", err.Error())
		return
	}
	os.Remove(sm.MetaURLFile)
	os.Remove(sm.LogFile)
	os.Remove(sm.Dir)
	os.Remove(filepath.Dir(sm.Dir))
}

// startMount starts the mount process of sm and waits until it serves.
func (n *Node) startMount(ctx context.Context, sm *stagingState, metaURL string) (Proc, error) {
	if len(n.o.Launcher) > 0 {
		if err := n.refreshToken(); err != nil {
			return Proc{}, status.Errorf(codes.Internal, "%v", err)
		}
	}
	argv := append(append([]string{}, n.o.Launcher...), n.binary, "mount",
		"--meta-url-file", sm.MetaURLFile, "--node", n.o.CacheNode, "--token-file", n.token)
	argv = append(append(argv, n.o.MountArgs...), sm.Dir)
	ctx, cancel := context.WithTimeout(ctx, n.o.MountTimeout)
	defer cancel()
	proc, err := n.mounter.StartFUSE(ctx, MountSpec{
		Dir: sm.Dir, Argv: argv, Env: mountEnv(), LogFile: sm.LogFile, Secrets: []string{metaURL},
	})
	if err != nil {
		code := codes.Internal
		if errors.Is(err, context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		return Proc{}, status.Errorf(code, "mount volume %q: %s", sm.Volume, scrub(err, metaURL))
	}
	return proc, nil
}

// mountEnv is the environment of mount processes: the plugin's, without
// variables that would change how JuiceFS or the mount behave.
func mountEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "JFS_") || strings.HasPrefix(k, "_FUSE") || strings.HasPrefix(k, "RINGCACHE_") || k == "META_PASSWORD" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// bindTarget bind-mounts the model into the target and then records it
// (with a fresh shared mount, the mount too), so that a failed publish
// leaves the state as it was. A crash between the bind and the save leaves
// a bind of a shared mount that the kubelet's retry of the publish replaces
// or its unpublish removes (unpublishUnknown). The volume lock is held.
func (n *Node) bindTarget(sm *stagingState, pr *publishRequest, fresh bool) error {
	created, err := prepareTarget(n.mounter, pr.target)
	if err != nil {
		return err
	}
	err = n.mounter.Unmount(pr.target) // a stale bind of ours, if any
	if err == nil {
		err = n.mounter.Bind(sm.Dir, pr.model.Path, pr.target, pr.flags)
	}
	if err != nil {
		if created {
			os.Remove(pr.target)
		}
		return bindError(err, pr)
	}
	n.mu.Lock()
	if fresh {
		n.state.Mounts[sm.Volume] = sm
	}
	sm.Targets[pr.target] = &targetState{VolumeID: pr.id, Path: pr.model.Path, NoExec: pr.flags.NoExec, Created: created}
	idle := sm.IdleSince
	sm.IdleSince = nil
	err = n.saveLocked()
	if err != nil {
		delete(sm.Targets, pr.target)
		sm.IdleSince = idle
		if fresh {
			delete(n.state.Mounts, sm.Volume)
		}
	} else {
		n.stopTimerLocked(sm.Volume)
	}
	n.mu.Unlock()
	if err != nil {
		n.mounter.Unmount(pr.target)
		if created {
			os.Remove(pr.target)
		}
		return status.Errorf(codes.Internal, "%v", err)
	}
	if pr.engine.fromRequest && !fresh {
		// The same engine with another password (a rotated one, which
		// the check just proved valid): the next remount uses it.
		if err := writeSecretFile(sm.MetaURLFile, pr.engine.url); err != nil {
			n.log.Warn("update the metadata URL file", "volume", sm.Volume, "error", err.Error())
		}
	}
	return nil
}

// bindError maps a failed bind to its gRPC status.
func bindError(err error, pr *publishRequest) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return status.Errorf(codes.InvalidArgument, "model path %q in volume %q is refused: it goes through a symlink or another mount", pr.model.Path, pr.model.Volume)
	case errors.Is(err, unix.ENOENT):
		return status.Errorf(codes.NotFound, "model path %q does not exist in the mount of volume %q", pr.model.Path, pr.model.Volume)
	case errors.Is(err, unix.ENOTDIR):
		return status.Errorf(codes.InvalidArgument, "model path %q in volume %q is not a directory", pr.model.Path, pr.model.Volume)
	}
	return status.Errorf(codes.Internal, "bind %s:%s at %s: %v", pr.model.Volume, pr.model.Path, pr.target, err)
}

// prepareTarget makes sure target is a directory with nothing mounted of
// someone else's; created tells whether it made the directory.
func prepareTarget(m Mounter, target string) (created bool, err error) {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(target, 0o750); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return false, status.Errorf(codes.FailedPrecondition, "the parent of target %q does not exist", target)
			}
			return false, status.Errorf(codes.Internal, "create target: %v", err)
		}
		return true, nil
	case isCorrupted(err):
		return false, nil // a dead bind: Unmount clears it
	case err != nil:
		return false, status.Errorf(codes.Internal, "target: %v", err)
	case !fi.IsDir():
		return false, status.Errorf(codes.FailedPrecondition, "target %q exists and is not a directory", target)
	}
	if mi, ok, _ := m.MountedAt(target); ok && !strings.HasPrefix(mi.FsType, "fuse.juicefs") {
		return false, status.Errorf(codes.FailedPrecondition, "target %q is already a %s mount point that this plugin did not make", target, mi.FsType)
	}
	return false, nil
}

func isCorrupted(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ESTALE)
}
