package csi

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mountutils "k8s.io/mount-utils"
)

// validateUnpublish checks an unpublish request: a bounded volume ID and a
// target confined like a publish's (checkTarget). It has no side effects.
func (n *Node) validateUnpublish(req *csi.NodeUnpublishVolumeRequest) (id, target string, err error) {
	if err := checkID(req.GetVolumeId(), "volume ID"); err != nil {
		return "", "", err
	}
	target, err = n.checkTarget(req.GetTargetPath(), "target path")
	if err != nil {
		return "", "", err
	}
	return req.GetVolumeId(), target, nil
}

// NodeUnpublishVolume implements csi.NodeServer: it removes the target's
// bind mount and, if the plugin made it, the target directory. When the
// shared mount has no target left it is unmounted UnmountDelay later. A
// target that is not published is success (idempotence), and nothing there
// is deleted; a target that holds another volume is NotFound for this one.
// Targets outside the kubelet's pods directory, and the plugin's own state
// directory and shared mounts, are InvalidArgument.
func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target, err := n.validateUnpublish(req)
	if err != nil {
		n.log.Info("unpublish refused", "code", status.Code(err).String(), "error", status.Convert(err).Message())
		return nil, err
	}
	release, err := n.busy.acquire(id, "volume")
	if err != nil {
		return nil, err
	}
	defer release()
	n.mu.Lock()
	sm, t := n.state.findTarget(target)
	n.mu.Unlock()
	if t == nil {
		return &csi.NodeUnpublishVolumeResponse{}, n.unpublishUnknown(target)
	}
	if t.VolumeID != id {
		return nil, status.Errorf(codes.NotFound, "volume %q is not published at %q (it holds volume %q)", id, target, t.VolumeID)
	}
	unlock := n.lockVolume(sm.Volume)
	defer unlock()
	n.mu.Lock()
	_, still := sm.Targets[target]
	n.mu.Unlock()
	if !still { // forgotten meanwhile (its directory went away)
		return &csi.NodeUnpublishVolumeResponse{}, n.unpublishUnknown(target)
	}
	if err := n.mounter.Unmount(target); err != nil {
		return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
	}
	if t.Created {
		// Only the directory it made, and only when empty.
		if err := removeEmptyDir(target); err != nil {
			n.log.Warn("unpublish: the target the plugin made is not an empty directory any more; leaving it", "target", target, "error", err.Error())
		}
	}
	n.mu.Lock()
	delete(sm.Targets, target)
	n.markIdleLocked(sm)
	err = n.saveLocked()
	left := len(sm.Targets)
	n.mu.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	n.log.Info("unpublished", "id", id, "volume", sm.Volume, "path", t.Path, "target", target, "targets_left", left)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// removeEmptyDir removes p if it is an empty directory (not a symlink,
// not a file); a missing p is fine.
func removeEmptyDir(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	if err := syscall.Rmdir(p); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

// unpublishUnknown handles a target the state does not name: already
// unpublished, or published before a crash lost the record. It unmounts a
// bind of one of this node's shared mounts there and touches nothing else:
// the kubelet removes its own directories.
func (n *Node) unpublishUnknown(target string) error {
	mi, ok, _ := n.mounter.MountedAt(target)
	if !ok {
		return nil
	}
	// A live bind of one of the shared mounts, or a dead JuiceFS bind (of
	// a shared mount that a crash left unrecorded and the restart removed).
	if !strings.HasPrefix(mi.FsType, "fuse.juicefs") || !n.isOurBind(mi) && n.mounter.Health(target) != MountBroken {
		return status.Errorf(codes.FailedPrecondition, "target %q is a %s mount point that this plugin did not make", target, mi.FsType)
	}
	if err := n.mounter.Unmount(target); err != nil {
		return status.Errorf(codes.Internal, "unmount %s: %v", target, err)
	}
	n.log.Info("unpublish: unmounted a bind of a shared mount the state did not name", "target", target)
	return nil
}

// isOurBind reports whether the mount mi is a bind of one of this node's
// shared mounts (the same device), or of a leftover under StateDir.
func (n *Node) isOurBind(mi mountutils.MountInfo) bool {
	n.mu.Lock()
	var dirs []string
	for _, sm := range n.state.Mounts {
		dirs = append(dirs, sm.Dir)
	}
	n.mu.Unlock()
	for _, d := range dirs {
		if sm, ok, _ := n.mounter.MountedAt(d); ok && sm.Major == mi.Major && sm.Minor == mi.Minor {
			return true
		}
	}
	return false
}
