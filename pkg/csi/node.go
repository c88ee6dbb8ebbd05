package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/peer"
)

// Node is the CSI node service. It mounts each JuiceFS volume once per
// node (the whole volume, read-only, through the ring) at a staging
// directory under StateDir, shared by every model and pod on the node, and
// publishes a model by bind-mounting <staging>/<model path> read-only into
// the target. The shared mount is reference counted by target and removed
// UnmountDelay after its last target is unpublished. Mount processes run
// detached (own session, optionally through a launcher into the host's
// namespaces) and outlive the plugin; the plugin persists its state and on
// start adopts healthy mounts, repairs broken ones (remount at the same
// place, re-bind every target) and removes unused ones.
type Node struct {
	csi.UnimplementedNodeServer
	o        NodeOptions
	checker  Checker
	mounter  Mounter
	log      *slog.Logger
	identity *Identity
	probe    func(ctx context.Context) error
	busy     inflight // volume IDs with an operation in flight

	statePath string
	trusted   map[string]trustedEngine // the configured volumes; nil: none
	podsDir   string                   // <KubeletDir>/pods, for messages
	podsDirs  []string                 // it, clean and with symlinks resolved
	stateDirs []string                 // StateDir, clean and with symlinks resolved
	binary    string                   // the mount binary as the mount process sees it
	token     string                   // the token file as the mount process sees it

	mu       sync.Mutex // guards state, volLocks, timers, closed
	state    *nodeState
	volLocks map[string]*sync.Mutex // serialize the work on each JuiceFS volume
	timers   map[string]*time.Timer // pending idle unmounts, by volume
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewNode validates o, loads the persisted state and returns the node
// service. Start adopts and repairs the mounts the state names.
func NewNode(o NodeOptions) (*Node, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.DriverName == "" {
		o.DriverName = DriverName
	}
	o.MountTimeout = orDuration(o.MountTimeout, 60*time.Second)
	o.CheckTimeout = orDuration(o.CheckTimeout, 30*time.Second)
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	n := &Node{
		o: o, checker: o.Checker, mounter: o.Mounter, log: o.Logger,
		statePath: filepath.Join(o.StateDir, "state.json"),
		binary:    o.MountBinary, token: o.TokenFile,
		volLocks: map[string]*sync.Mutex{}, timers: map[string]*time.Timer{},
		stop: make(chan struct{}),
	}
	if n.checker == nil {
		n.checker = JuiceChecker{}
	}
	if n.mounter == nil {
		n.mounter = &SystemMounter{}
	}
	n.trusted = parseTrusted(o.TrustedEngines)
	kubelet := o.KubeletDir
	if kubelet == "" {
		kubelet = DefaultKubeletDir
	}
	n.podsDir = filepath.Join(filepath.Clean(kubelet), "pods")
	n.podsDirs = withResolved(n.podsDir)
	n.stateDirs = withResolved(filepath.Clean(o.StateDir))
	n.probe = o.CacheProbe
	if n.probe == nil {
		n.probe = n.probeCacheNode
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir, "volumes"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	st, err := loadState(n.statePath)
	if err != nil {
		return nil, err
	}
	n.state = st
	if len(o.Launcher) > 0 {
		// The mount process runs in another mount namespace: hand it
		// paths under StateDir, which both namespaces share.
		n.binary = filepath.Join(o.StateDir, "bin", "csi")
		n.token = filepath.Join(o.StateDir, "token")
		if err := copyBinary(o.MountBinary, n.binary); err != nil {
			return nil, fmt.Errorf("copy the mount binary into the state dir: %w", err)
		}
		if err := n.refreshToken(); err != nil {
			return nil, err
		}
	}
	n.identity = newIdentity(o.DriverName, o.Version, n.ready, o.Logger)
	return n, nil
}

// withResolved is p, and p with its symlinks resolved when that differs.
func withResolved(p string) []string {
	out := []string{p}
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		out = append(out, r)
	}
	return out
}

// Register registers the identity and node services on s.
func (n *Node) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, n.identity)
	csi.RegisterNodeServer(s, n)
}

// Identity returns the node's identity service.
func (n *Node) Identity() *Identity { return n.identity }

// Start adopts, repairs or cleans up the mounts of the persisted state
// (see recoverStaging), removes leftovers the state does not name, and
// starts the periodic repair. It returns once the state has been handled.
func (n *Node) Start(ctx context.Context) {
	n.recoverAll(ctx)
	n.cleanLeftovers()
	if n.o.RepairInterval > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			t := time.NewTicker(n.o.RepairInterval)
			defer t.Stop()
			for {
				select {
				case <-n.stop:
					return
				case <-t.C:
					n.recoverAll(ctx)
				}
			}
		}()
	}
}

// Close stops timers and the repair loop. Mounts stay: they outlive the
// plugin, and the next start finds them again.
func (n *Node) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.stop)
	for v := range n.timers {
		n.stopTimerLocked(v)
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// lockVolume serializes the work on one JuiceFS volume's shared mount.
func (n *Node) lockVolume(volume string) func() {
	n.mu.Lock()
	l := n.volLocks[volume]
	if l == nil {
		l = &sync.Mutex{}
		n.volLocks[volume] = l
	}
	n.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// saveLocked persists the state; n.mu is held.
func (n *Node) saveLocked() error { return n.state.save(n.statePath) }

// save persists the state.
func (n *Node) save() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.saveLocked()
}

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

// probeCacheNode asks the local cache node for its status.
func (n *Node) probeCacheNode(ctx context.Context) error {
	tok, err := peer.LoadToken(n.o.TokenFile)
	if err != nil {
		return err
	}
	c, err := peer.Dial(n.o.CacheNode, peer.ClientOptions{Token: tok})
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

// NodeGetCapabilities implements csi.NodeServer. Without
// STAGE_UNSTAGE_VOLUME: the shared mount is per JuiceFS volume, not per CSI
// volume, so the plugin manages it itself. GET_VOLUME_HEALTH is CSI
// v1.13's successor of the removed VOLUME_CONDITION.
func (n *Node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	rpc := func(t csi.NodeServiceCapability_RPC_Type) *csi.NodeServiceCapability {
		return &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}}
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{
		rpc(csi.NodeServiceCapability_RPC_GET_VOLUME_STATS),
		rpc(csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH),
	}}, nil
}

// NodeGetInfo implements csi.NodeServer.
func (n *Node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.o.NodeID}, nil
}

// markIdleLocked starts the unmount delay when sm has no target left; n.mu
// is held.
func (n *Node) markIdleLocked(sm *stagingState) {
	if len(sm.Targets) > 0 || n.closed {
		return
	}
	if sm.IdleSince == nil {
		now := time.Now()
		sm.IdleSince = &now
	}
	n.scheduleIdleLocked(sm.Volume, time.Until(sm.IdleSince.Add(n.o.UnmountDelay)))
}

func (n *Node) scheduleIdleLocked(volume string, after time.Duration) {
	n.stopTimerLocked(volume)
	if n.closed {
		return
	}
	// The callback is counted in wg, so Close waits for an unmount that
	// has started.
	n.wg.Add(1)
	n.timers[volume] = time.AfterFunc(max(after, 0), func() {
		defer n.wg.Done()
		n.unmountIfIdle(volume)
	})
}

// stopTimerLocked cancels volume's pending unmount, if any.
func (n *Node) stopTimerLocked(volume string) {
	if t := n.timers[volume]; t != nil {
		if t.Stop() {
			n.wg.Done() // it will not run
		}
		delete(n.timers, volume)
	}
}

// unmountIfIdle removes a shared mount that has had no target for
// UnmountDelay.
func (n *Node) unmountIfIdle(volume string) {
	unlock := n.lockVolume(volume)
	defer unlock()
	n.mu.Lock()
	sm := n.state.Mounts[volume]
	if n.closed || sm == nil || len(sm.Targets) > 0 || sm.IdleSince == nil {
		n.mu.Unlock()
		return
	}
	if wait := time.Until(sm.IdleSince.Add(n.o.UnmountDelay)); wait > 0 {
		n.scheduleIdleLocked(volume, wait)
		n.mu.Unlock()
		return
	}
	delete(n.timers, volume)
	n.mu.Unlock()
	if err := n.removeStaging(sm); err != nil {
		n.log.Error("unmount idle shared mount; retrying later", "volume", volume, "error", err.Error())
		n.mu.Lock()
		if !n.closed {
			n.scheduleIdleLocked(volume, max(n.o.UnmountDelay, 5*time.Second))
		}
		n.mu.Unlock()
		return
	}
	n.log.Info("idle shared mount removed", "volume", volume, "dir", sm.Dir)
}

// removeStaging unmounts a shared mount, removes its files and forgets
// it. The volume lock is held.
func (n *Node) removeStaging(sm *stagingState) error {
	if err := n.mounter.StopFUSE(sm.Dir, sm.proc()); err != nil {
		return err
	}
	// Never RemoveAll: only the files the plugin made, and directories
	// that must be empty.
	os.Remove(sm.MetaURLFile)
	os.Remove(sm.LogFile)
	os.Remove(sm.Dir)
	os.Remove(filepath.Dir(sm.Dir))
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Mounts[sm.Volume] == sm {
		delete(n.state.Mounts, sm.Volume)
	}
	return n.saveLocked()
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
	if err := statfsTimeout(p, &st, 5*time.Second); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v (NodeGetVolumeHealth reports the volume's health; broken mounts are repaired)", p, err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

func statfsTimeout(p string, st *unix.Statfs_t, d time.Duration) error {
	done := make(chan error, 1)
	var out unix.Statfs_t
	go func() { done <- unix.Statfs(p, &out) }()
	select {
	case err := <-done:
		*st = out
		return err
	case <-time.After(d):
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

// writeSecretFile writes a secret to a 0600 file atomically, unless it
// holds it already.
func writeSecretFile(path, secret string) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == secret {
		return nil
	}
	return writeFileAtomic(path, []byte(secret), 0o600)
}

// refreshToken copies the token file into the state dir for the mount
// processes (launcher mode); the copy follows a rotated token at the next
// mount.
func (n *Node) refreshToken() error {
	b, err := os.ReadFile(n.o.TokenFile)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	return writeSecretFile(n.token, string(b))
}

// copyBinary copies src to dst (atomically, executable) unless dst has the
// same size and modification time.
func copyBinary(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return err
	}
	if di, err := os.Stat(dst); err == nil && di.Size() == si.Size() && di.ModTime().Equal(si.ModTime()) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".csi.tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), si.ModTime(), si.ModTime()); err != nil {
		return err
	}
	// A running mount process keeps its old inode.
	return os.Rename(tmp.Name(), dst)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
