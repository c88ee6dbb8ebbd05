package csi

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/ringcache/ringcache/pkg/clock"
	"google.golang.org/grpc"
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
	clock    clock.Clock
	timers   map[string]clock.Timer // pending idle unmounts, by volume
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewNode fills in o's defaults, validates it, loads the persisted state and returns the node
// service. Start adopts and repairs the mounts the state names.
func NewNode(o NodeOptions) (*Node, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		o: o, checker: o.Checker, mounter: o.Mounter, log: o.Logger, probe: o.CacheProbe, clock: o.Clock,
		statePath: filepath.Join(o.StateDir, "state.json"),
		binary:    o.MountBinary, token: o.TokenFile,
		volLocks: map[string]*sync.Mutex{}, timers: map[string]clock.Timer{},
		stop: make(chan struct{}),
	}
	n.trusted = parseTrusted(o.TrustedEngines)
	n.podsDir = filepath.Join(filepath.Clean(o.KubeletDir), "pods")
	n.podsDirs = withResolved(n.podsDir)
	n.stateDirs = withResolved(filepath.Clean(o.StateDir))
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
		go n.repairLoop(ctx)
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
