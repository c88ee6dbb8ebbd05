package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/peer"
)

// ready is the node's probe: the local cache node answers with a ring and
// the mount binary is there.
func (n *Node) ready(ctx context.Context) error {
	for _, b := range []string{n.o.MountBinary, n.binary} {
		fi, err := os.Stat(b)
		if err != nil {
			return fmt.Errorf("mount binary: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("mount binary %s is not an executable file", b)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.probe(ctx); err != nil {
		return fmt.Errorf("cache node %s: %w", n.o.CacheNode, err)
	}
	return nil
}

// probeCacheNode asks the cache node at addr, with the token of tokenFile,
// for its status.
func probeCacheNode(ctx context.Context, addr, tokenFile string) error {
	tok, err := peer.LoadToken(tokenFile)
	if err != nil {
		return err
	}
	c, err := peer.Dial(addr, peer.ClientOptions{Token: tok})
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if len(st.GetMembers()) == 0 {
		return errors.New("its ring has no members")
	}
	return nil
}

// NodeGetVolumeStats implements csi.NodeServer: the statfs of the target,
// which for a JuiceFS mount is the volume's usage and inodes.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id := req.GetVolumeId()
	if err := checkID(id, "volume ID"); err != nil {
		return nil, err
	}
	// Relative paths are within bounds NotFound, as the sanity suite
	// expects: nothing is published there.
	p, err := checkPathBounds(req.GetVolumePath(), "volume path")
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	_, t := n.state.findTarget(p)
	n.mu.Unlock()
	if t == nil || t.VolumeID != id {
		return nil, status.Errorf(codes.NotFound, "volume %q is not published at %q", id, p)
	}
	var st unix.Statfs_t
	if err := statfsTimeout(n.clock, p, &st, statsTimeout); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v (NodeGetVolumeHealth reports the volume's health; broken mounts are repaired)", p, err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// statsTimeout bounds the statfs of NodeGetVolumeStats.
const statsTimeout = 5 * time.Second

// statfsTimeout is a statfs of p that gives up after d on clk (a hung FUSE
// mount never answers).
func statfsTimeout(clk clock.Clock, p string, st *unix.Statfs_t, d time.Duration) error {
	done := make(chan error, 1)
	var out unix.Statfs_t
	go func() { done <- unix.Statfs(p, &out) }()
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		*st = out
		return err
	case <-t.C():
		return errors.New("no answer in time")
	}
}

// NodeGetVolumeHealth implements csi.NodeServer (CSI v1.13's successor of
// VOLUME_CONDITION): INACCESSIBLE when a target's bind or the shared mount
// is broken or missing, DEGRADED when the shared mount does not answer, its
// mount process is gone, or the local cache node does not answer (reads
// then go to other owners or the origin).
func (n *Node) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if err := checkID(id, "volume ID"); err != nil {
		return nil, err
	}
	if req.GetStagingTargetPath() != "" {
		return nil, status.Error(codes.InvalidArgument, "staging target path given, but this plugin does not stage volumes")
	}
	want := ""
	if p := req.GetVolumePublishPath(); p != "" {
		var err error
		if want, err = checkPath(p, "volume publish path"); err != nil {
			return nil, err
		}
	}
	type item struct {
		target, dir string
		proc        Proc
	}
	var items []item
	n.mu.Lock()
	for _, sm := range n.state.Mounts {
		for target, t := range sm.Targets {
			if t.VolumeID == id && (want == "" || want == target) {
				items = append(items, item{target, sm.Dir, sm.proc()})
			}
		}
	}
	n.mu.Unlock()
	if len(items) == 0 {
		return nil, status.Errorf(codes.NotFound, "volume %q is not published on this node", id)
	}
	var entries []*csi.VolumeHealth_VolumeHealthEntry
	seen := map[string]bool{}
	add := func(s csi.VolumeHealthErrorType, reason, msg string) {
		key := s.String() + "/" + reason
		if !seen[key] {
			seen[key] = true
			entries = append(entries, &csi.VolumeHealth_VolumeHealthEntry{Status: s, Reason: reason, Message: msg})
		}
	}
	for _, it := range items {
		switch n.mounter.Health(it.dir) {
		case MountHealthy:
			if !n.mounter.ProcessAlive(it.proc, it.dir) {
				add(csi.VolumeHealthErrorType_DEGRADED, "MountProcessGone", "the shared mount answers but its mount process is gone")
			}
		case MountUnresponsive:
			add(csi.VolumeHealthErrorType_DEGRADED, "SharedMountUnresponsive", "the shared JuiceFS mount does not answer in time")
		default:
			add(csi.VolumeHealthErrorType_INACCESSIBLE, "SharedMountBroken", "the shared JuiceFS mount is broken or missing; the plugin remounts it")
		}
		switch n.mounter.Health(it.target) {
		case MountHealthy:
		case MountUnresponsive:
			add(csi.VolumeHealthErrorType_DEGRADED, "TargetUnresponsive", "the target does not answer in time")
		case MountMissing:
			add(csi.VolumeHealthErrorType_INACCESSIBLE, "TargetNotMounted", "nothing is mounted at "+it.target)
		default:
			add(csi.VolumeHealthErrorType_INACCESSIBLE, "TransportEndpointNotConnected", "the bind at "+it.target+" points at a dead mount")
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if err := n.probe(pctx); err != nil {
		add(csi.VolumeHealthErrorType_DEGRADED, "CacheNodeUnavailable", "the local cache node does not answer; reads go to other owners or the origin")
	}
	cancel()
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: &csi.VolumeHealth{VolumeId: id, HealthStatuses: entries}}, nil
}
