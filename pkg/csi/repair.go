package csi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// remount replaces a broken shared mount at the same place, with the
// engine it must use (mountURL), and re-binds every target to it. What is
// left of the old mount is detached lazily and its processes are stopped.
// The volume lock is held.
func (n *Node) remount(ctx context.Context, sm *stagingState) error {
	metaURL, err := n.mountURL(sm)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "volume %q: %v", sm.Volume, err)
	}
	if err := n.mounter.StopFUSE(sm.Dir, sm.proc()); err != nil {
		return status.Errorf(codes.Internal, "volume %q: remove the broken mount: %v", sm.Volume, err)
	}
	if err := writeSecretFile(sm.MetaURLFile, metaURL); err != nil {
		return status.Errorf(codes.Internal, "volume %q: write the metadata URL file: %v", sm.Volume, err)
	}
	proc, err := n.startMount(ctx, sm, metaURL)
	if err != nil {
		return err
	}
	n.mu.Lock()
	sm.setProc(proc)
	err = n.saveLocked()
	n.mu.Unlock()
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	addr := "(not a redis URL)"
	if id, err := ParseMetaIdentity(metaURL, false); err == nil {
		addr = id.Address()
	}
	n.log.Info("shared mount repaired", "volume", sm.Volume, "dir", sm.Dir, "pid", proc.PID, "engine", addr)
	n.rebind(sm, true)
	return nil
}

// rebind binds again every target of sm whose bind is not healthy (all of
// them with force: after a remount every old bind points at the dead
// mount). Targets whose directory is gone are forgotten. The volume lock
// is held.
func (n *Node) rebind(sm *stagingState, force bool) {
	n.mu.Lock()
	targets := make(map[string]targetState, len(sm.Targets))
	for p, t := range sm.Targets {
		targets[p] = *t
	}
	n.mu.Unlock()
	changed := false
	for _, target := range sortedKeys(targets) {
		t := targets[target]
		if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
			n.log.Info("target is gone; forgetting it", "volume", sm.Volume, "target", target)
			n.mu.Lock()
			delete(sm.Targets, target)
			n.mu.Unlock()
			changed = true
			continue
		}
		if h := n.mounter.Health(target); !force && h != MountBroken && h != MountMissing {
			continue // healthy, or slow but not known dead
		}
		if err := n.mounter.Unmount(target); err != nil {
			n.log.Error("unmount stale bind", "target", target, "error", err.Error())
			continue
		}
		if err := n.mounter.Bind(sm.Dir, t.Path, target, BindFlags{NoExec: t.NoExec}); err != nil {
			n.log.Error("re-bind target", "volume", sm.Volume, "path", t.Path, "target", target, "error", err.Error())
			continue
		}
		n.log.Info("target re-bound", "volume", sm.Volume, "path", t.Path, "target", target)
	}
	if changed {
		n.mu.Lock()
		n.markIdleLocked(sm)
		if err := n.saveLocked(); err != nil {
			n.log.Error("save state", "error", err.Error())
		}
		n.mu.Unlock()
	}
}

// repairLoop runs recoverAll every RepairInterval until Close; it is
// counted in n.wg.
func (n *Node) repairLoop(ctx context.Context) {
	defer n.wg.Done()
	t := n.clock.NewTicker(n.o.RepairInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C():
			n.recoverAll(ctx)
		}
	}
}

// recoverAll checks every shared mount of the state (see recoverStaging).
func (n *Node) recoverAll(ctx context.Context) {
	n.mu.Lock()
	var volumes []string
	for v := range n.state.Mounts {
		volumes = append(volumes, v)
	}
	n.mu.Unlock()
	sort.Strings(volumes)
	for _, v := range volumes {
		if ctx.Err() != nil {
			return
		}
		n.recoverStaging(ctx, v)
	}
}

// recoverStaging checks one shared mount: targets whose directory is gone
// are forgotten; a mount nobody uses is removed (after what is left of
// its unmount delay); a healthy one is adopted and its missing or dead
// binds are re-bound; a broken one (its server gone: "transport endpoint
// is not connected", or not a FUSE mount any more, or not mounted) is
// remounted at the same place and every target re-bound.
func (n *Node) recoverStaging(ctx context.Context, volume string) {
	unlock := n.lockVolume(volume)
	defer unlock()
	n.mu.Lock()
	sm := n.state.Mounts[volume]
	n.mu.Unlock()
	if sm == nil {
		return
	}
	n.mu.Lock()
	for target := range sm.Targets {
		if _, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
			n.log.Info("target is gone; forgetting it", "volume", volume, "target", target)
			delete(sm.Targets, target)
		}
	}
	used := len(sm.Targets) > 0
	n.mu.Unlock()
	h := n.mounter.Health(sm.Dir)
	if !used {
		if h == MountHealthy || h == MountUnresponsive {
			n.mu.Lock()
			n.markIdleLocked(sm)
			if err := n.saveLocked(); err != nil {
				n.log.Error("save state", "error", err.Error())
			}
			n.mu.Unlock()
			return
		}
		n.log.Info("unused shared mount is "+h.String()+"; removing it", "volume", volume, "dir", sm.Dir)
		if err := n.removeStaging(sm); err != nil {
			n.log.Error("remove unused shared mount", "volume", volume, "error", err.Error())
		}
		return
	}
	if h == MountHealthy && !n.mounter.ProcessAlive(sm.proc(), sm.Dir) {
		// No process of the mount's session serves it any more: what
		// answered was the kernel's cache, and the next request that
		// reaches the FUSE connection fails. Remount.
		n.log.Warn("shared mount's processes are gone; remounting", "volume", volume, "dir", sm.Dir, "pid", sm.PID)
		h = MountBroken
	}
	if h == MountHealthy && n.trusted != nil {
		if te, ok := n.trusted[volume]; ok && errors.Is(checkMountEngine(sm, engine{url: te.url, id: te.id}), errOtherEngine) {
			n.log.Warn("shared mount was made from another metadata engine than the node's; remounting", "volume", volume, "dir", sm.Dir)
			h = MountBroken
		}
	}
	switch h {
	case MountHealthy:
		n.rebind(sm, false)
	case MountUnresponsive:
		n.log.Warn("shared mount does not answer; leaving it", "volume", volume, "dir", sm.Dir)
	default:
		n.log.Warn("shared mount is "+h.String()+"; remounting", "volume", volume, "dir", sm.Dir, "targets", len(sm.Targets))
		if err := n.remount(ctx, sm); err != nil {
			n.log.Error("repair shared mount", "volume", volume, "error", err.Error())
		}
	}
}

// cleanLeftovers removes volume directories under StateDir that the
// state does not name (a crash between a mount and the state's save).
func (n *Node) cleanLeftovers() {
	dir := filepath.Join(n.o.StateDir, "volumes")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n.mu.Lock()
		_, known := n.state.Mounts[e.Name()]
		n.mu.Unlock()
		if known || !e.IsDir() {
			continue
		}
		unlock := n.lockVolume(e.Name())
		n.mu.Lock()
		_, known = n.state.Mounts[e.Name()]
		n.mu.Unlock()
		if !known {
			vd := filepath.Join(dir, e.Name())
			n.log.Info("removing a leftover volume directory", "dir", vd)
			if err := n.mounter.StopFUSE(filepath.Join(vd, "mnt"), Proc{}); err != nil {
				n.log.Error("unmount leftover", "dir", vd, "error", err.Error())
			} else {
				for _, f := range []string{"meta-url", "mount.log", "mnt", ""} {
					os.Remove(filepath.Join(vd, f))
				}
			}
		}
		unlock()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
