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
	"strings"
	"sync"
	"syscall"
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
	binary    string // the mount binary as the mount process sees it
	token     string // the token file as the mount process sees it

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

// publishRequest is a validated NodePublishVolume request.
type publishRequest struct {
	id, target, metaURL string
	model               Model
	flags               BindFlags
}

func validateTarget(p, field string) (string, error) {
	if p == "" {
		return "", status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if !filepath.IsAbs(p) {
		return "", status.Errorf(codes.InvalidArgument, "%s %q must be absolute", field, p)
	}
	if strings.ContainsRune(p, 0) {
		return "", status.Errorf(codes.InvalidArgument, "%s contains a NUL byte", field)
	}
	return filepath.Clean(p), nil
}

func (n *Node) validatePublish(req *csi.NodePublishVolumeRequest) (*publishRequest, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	target, err := validateTarget(req.GetTargetPath(), "target path")
	if err != nil {
		return nil, err
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
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
	const secretName = "node-publish secret (csi.storage.k8s.io/node-publish-secret-name, or nodePublishSecretRef)"
	metaURL, err := metaURLFrom(req.GetSecrets(), secretName)
	if err != nil {
		return nil, err
	}
	prefix, err := secretPrefix(req.GetSecrets(), "node-publish secret")
	if err != nil {
		return nil, err
	}
	if err := checkPrefix(model.Path, prefix, "the node-publish secret's "+KeyAllowedPrefix); err != nil {
		return nil, err
	}
	if n.o.TrustedEngines != nil {
		trusted, ok := n.o.TrustedEngines[model.Volume]
		if !ok {
			return nil, status.Errorf(codes.PermissionDenied, "volume %q is not one this node serves", model.Volume)
		}
		if urlWithoutPassword(strings.TrimSpace(trusted)) != urlWithoutPassword(metaURL) {
			return nil, status.Errorf(codes.PermissionDenied, "the secret's %s is not the metadata engine of volume %q this node trusts", KeyMetaURL, model.Volume)
		}
	}
	pr := &publishRequest{id: req.GetVolumeId(), target: target, metaURL: metaURL, model: model}
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
// no-op.
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	pr, err := n.validatePublish(req)
	if err != nil {
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
	cctx, cancel := context.WithTimeout(ctx, n.o.CheckTimeout)
	info, err := n.checker.Check(cctx, pr.metaURL, pr.model)
	cancel()
	if err != nil {
		n.log.Warn("publish refused", "id", pr.id, "volume", pr.model.Volume, "path", pr.model.Path, "target", pr.target,
			"code", status.Code(err).String(), "error", scrub(err, pr.metaURL))
		return nil, err
	}
	unlock := n.lockVolume(pr.model.Volume)
	defer unlock()
	if done, err := n.alreadyPublished(pr); done || err != nil {
		return &csi.NodePublishVolumeResponse{}, err
	}
	sm, mounted, err := n.ensureStaging(ctx, pr.model.Volume, info.UUID, pr.metaURL)
	if err != nil {
		return nil, err
	}
	if err := n.bindTarget(sm, pr); err != nil {
		return nil, err
	}
	n.log.Info("published", "id", pr.id, "volume", pr.model.Volume, "path", pr.model.Path, "target", pr.target,
		"new_shared_mount", mounted, "took", time.Since(start).Round(time.Millisecond).String())
	return &csi.NodePublishVolumeResponse{}, nil
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
	return n.mounter.Health(pr.target) == MountHealthy && n.mounter.Health(sm.Dir) == MountHealthy, nil
}

// ensureStaging returns the volume's shared mount, mounting it or
// repairing it when needed; mounted tells whether it started a mount. The
// volume lock is held.
func (n *Node) ensureStaging(ctx context.Context, volume, uuid, metaURL string) (*stagingState, bool, error) {
	n.mu.Lock()
	sm := n.state.Mounts[volume]
	n.mu.Unlock()
	if sm != nil {
		if sm.UUID != uuid {
			return nil, false, status.Errorf(codes.FailedPrecondition, "volume %q is mounted on this node from the JuiceFS volume with UUID %s, but the secret's metadata URL names UUID %s", volume, sm.UUID, uuid)
		}
		// The shared mount serves everyone who names the volume, so the
		// request must name the same metadata engine the mount was made
		// from: a look-alike engine (a copied format with the same name
		// and UUID) must not get at this volume's data. Only the
		// password may differ (a rotated one; the check above proved it
		// valid): the next remount uses the newest.
		stored, err := os.ReadFile(sm.MetaURLFile)
		if err != nil {
			return nil, false, status.Errorf(codes.Internal, "read the metadata URL file: %v", err)
		}
		if urlWithoutPassword(strings.TrimSpace(string(stored))) != urlWithoutPassword(metaURL) {
			return nil, false, status.Errorf(codes.PermissionDenied, "the secret's %s names another metadata engine than the one volume %q is mounted from on this node", KeyMetaURL, volume)
		}
		if err := writeSecretFile(sm.MetaURLFile, metaURL); err != nil {
			return nil, false, status.Errorf(codes.Internal, "write the metadata URL file: %v", err)
		}
		switch h := n.mounter.Health(sm.Dir); h {
		case MountHealthy, MountUnresponsive:
			return sm, false, nil
		default:
			n.log.Warn("shared mount is "+h.String()+"; remounting", "volume", volume, "dir", sm.Dir)
			if err := n.remount(ctx, sm, metaURL); err != nil {
				return nil, false, err
			}
			return sm, true, nil
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
	if err := n.mounter.StopFUSE(sm.Dir, 0); err != nil {
		return nil, false, status.Errorf(codes.Internal, "clear %s: %v", sm.Dir, err)
	}
	if err := os.MkdirAll(sm.Dir, 0o755); err != nil {
		return nil, false, status.Errorf(codes.Internal, "create %s: %v", sm.Dir, err)
	}
	if err := os.Chmod(volDir, 0o700); err != nil {
		return nil, false, status.Errorf(codes.Internal, "chmod %s: %v", volDir, err)
	}
	if err := writeSecretFile(sm.MetaURLFile, metaURL); err != nil {
		return nil, false, status.Errorf(codes.Internal, "write the metadata URL file: %v", err)
	}
	pid, err := n.startMount(ctx, sm, metaURL)
	if err != nil {
		os.Remove(sm.MetaURLFile)
		return nil, false, err
	}
	sm.PID = pid
	n.mu.Lock()
	n.state.Mounts[volume] = sm
	err = n.saveLocked()
	n.mu.Unlock()
	if err != nil {
		return nil, false, status.Errorf(codes.Internal, "%v", err)
	}
	n.log.Info("shared mount started", "volume", volume, "uuid", uuid, "dir", sm.Dir, "pid", pid)
	return sm, true, nil
}

// startMount starts the mount process of sm and waits until it serves.
func (n *Node) startMount(ctx context.Context, sm *stagingState, metaURL string) (int, error) {
	if len(n.o.Launcher) > 0 {
		if err := n.refreshToken(); err != nil {
			return 0, status.Errorf(codes.Internal, "%v", err)
		}
	}
	argv := append(append([]string{}, n.o.Launcher...), n.binary, "mount",
		"--meta-url-file", sm.MetaURLFile, "--node", n.o.CacheNode, "--token-file", n.token)
	argv = append(append(argv, n.o.MountArgs...), sm.Dir)
	ctx, cancel := context.WithTimeout(ctx, n.o.MountTimeout)
	defer cancel()
	pid, err := n.mounter.StartFUSE(ctx, MountSpec{
		Dir: sm.Dir, Argv: argv, Env: mountEnv(), LogFile: sm.LogFile, Secrets: []string{metaURL},
	})
	if err != nil {
		code := codes.Internal
		if errors.Is(err, context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		return 0, status.Errorf(code, "mount volume %q: %s", sm.Volume, scrub(err, metaURL))
	}
	return pid, nil
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

// remount replaces a broken shared mount at the same place and re-binds
// every target to it. The volume lock is held.
func (n *Node) remount(ctx context.Context, sm *stagingState, metaURL string) error {
	if metaURL == "" {
		b, err := os.ReadFile(sm.MetaURLFile)
		if err != nil {
			return status.Errorf(codes.Internal, "volume %q: read the metadata URL file: %v", sm.Volume, err)
		}
		metaURL = strings.TrimSpace(string(b))
	}
	if err := n.mounter.StopFUSE(sm.Dir, sm.PID); err != nil {
		return status.Errorf(codes.Internal, "volume %q: remove the broken mount: %v", sm.Volume, err)
	}
	pid, err := n.startMount(ctx, sm, metaURL)
	if err != nil {
		return err
	}
	n.mu.Lock()
	sm.PID = pid
	err = n.saveLocked()
	n.mu.Unlock()
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	n.log.Info("shared mount repaired", "volume", sm.Volume, "dir", sm.Dir, "pid", pid)
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

// bindTarget records the target and bind-mounts the model into it. The
// target is recorded first, so that a crash between the two leaves a
// target the next start re-binds rather than a bind nobody knows. The
// volume lock is held.
func (n *Node) bindTarget(sm *stagingState, pr *publishRequest) error {
	created, err := prepareTarget(n.mounter, pr.target)
	if err != nil {
		return err
	}
	n.mu.Lock()
	sm.Targets[pr.target] = &targetState{VolumeID: pr.id, Path: pr.model.Path, NoExec: pr.flags.NoExec}
	sm.IdleSince = nil
	n.stopTimerLocked(sm.Volume)
	err = n.saveLocked()
	n.mu.Unlock()
	if err == nil {
		err = n.mounter.Unmount(pr.target) // a stale bind of ours, if any
	}
	if err == nil {
		err = n.mounter.Bind(sm.Dir, pr.model.Path, pr.target, pr.flags)
	}
	if err == nil {
		return nil
	}
	n.mu.Lock()
	delete(sm.Targets, pr.target)
	n.markIdleLocked(sm)
	if serr := n.saveLocked(); serr != nil {
		n.log.Error("save state", "error", serr.Error())
	}
	n.mu.Unlock()
	if created {
		os.Remove(pr.target)
	}
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

// NodeUnpublishVolume implements csi.NodeServer: it removes the target's
// bind mount and the target directory. When the shared mount has no
// target left it is unmounted UnmountDelay later. A target that is not
// published is success (idempotence); a target that holds another volume
// is NotFound for this one.
func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	target, err := validateTarget(req.GetTargetPath(), "target path")
	if err != nil {
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
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove target: %v", err)
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

// unpublishUnknown handles a target the state does not name: already
// unpublished, or published before the state was lost.
func (n *Node) unpublishUnknown(target string) error {
	if mi, ok, _ := n.mounter.MountedAt(target); ok {
		if !strings.HasPrefix(mi.FsType, "fuse.juicefs") {
			return status.Errorf(codes.FailedPrecondition, "target %q is a %s mount point that this plugin did not make", target, mi.FsType)
		}
		if err := n.mounter.Unmount(target); err != nil {
			return status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			n.log.Warn("unpublish: target is not empty and not ours; leaving it", "target", target)
			return nil
		}
		return status.Errorf(codes.Internal, "remove target: %v", err)
	}
	return nil
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
	if err := n.mounter.StopFUSE(sm.Dir, sm.PID); err != nil {
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
	switch h {
	case MountHealthy:
		if !n.mounter.ProcessAlive(sm.PID, sm.Dir) {
			// The FUSE connection still answers, so some process
			// serves it (a JuiceFS server outlives its supervisor):
			// remounting would cut every pod off. Keep it.
			n.log.Warn("shared mount answers but its recorded mount process is gone; keeping it", "volume", volume, "pid", sm.PID)
		}
		n.rebind(sm, false)
	case MountUnresponsive:
		n.log.Warn("shared mount does not answer; leaving it", "volume", volume, "dir", sm.Dir)
	default:
		n.log.Warn("shared mount is "+h.String()+"; remounting", "volume", volume, "dir", sm.Dir, "targets", len(sm.Targets))
		if err := n.remount(ctx, sm, ""); err != nil {
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
			if err := n.mounter.StopFUSE(filepath.Join(vd, "mnt"), 0); err != nil {
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

// NodeGetVolumeStats implements csi.NodeServer: the statfs of the target,
// which for a JuiceFS mount is the volume's usage and inodes.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	p := req.GetVolumePath()
	if p == "" {
		return nil, status.Error(codes.InvalidArgument, "volume path is required")
	}
	n.mu.Lock()
	_, t := n.state.findTarget(filepath.Clean(p))
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
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if req.GetStagingTargetPath() != "" {
		return nil, status.Error(codes.InvalidArgument, "staging target path given, but this plugin does not stage volumes")
	}
	want := ""
	if p := req.GetVolumePublishPath(); p != "" {
		want = filepath.Clean(p)
	}
	type item struct {
		target, dir string
		pid         int
	}
	var items []item
	n.mu.Lock()
	for _, sm := range n.state.Mounts {
		for target, t := range sm.Targets {
			if t.VolumeID == id && (want == "" || want == target) {
				items = append(items, item{target, sm.Dir, sm.PID})
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
			if !n.mounter.ProcessAlive(it.pid, it.dir) {
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
