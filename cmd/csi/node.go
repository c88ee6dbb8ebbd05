package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/csi"
)

const nodeHelp = `Usage: csi node [flags]

Serves the CSI identity and node services of csi.ringcache.io on a unix
socket. NodePublishVolume mounts each JuiceFS volume once per node (the
"csi mount" process, detached into its own session, or through --launcher
into the host's namespaces) under --state-dir and bind-mounts the model
read-only into the pod's target. The state dir keeps the plugin's state so
that a restarted plugin adopts its mounts, repairs broken ones and removes
unused ones. See docs/csi.md.

The node mounts only the volumes of --volumes-dir, each with the metadata
URL configured there; a request only names the volume (a "metaurl" in its
node-publish secret, if any, must name the same engine, or the publish is
refused). A node without --volumes-dir mounts nothing, unless
--allow-request-metaurl lets the node-publish secret's "metaurl" choose the
engine (any pod author can write that secret with an inline volume). The
plugin writes the URL to a 0600 file under --state-dir for the mount process
and never logs it; logs show the address dialled (host:port/db).

Publish and unpublish targets must be under <--kubelet-dir>/pods; the state
dir is never a target.

Flags:
`

func runNode(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("node", nodeHelp, stderr)
	exe, _ := os.Executable()
	var (
		endpoint, nodeID, stateDir, cacheNode, tokenFile, mountBinary, launcher, driverName, volumesDir, kubeletDir string
		unmountDelay, mountTimeout, repairInterval                                                                  time.Duration
		mountArgs                                                                                                   listFlag
		lf                                                                                                          logFlags
		allowRequestURL                                                                                             bool
	)
	fs.StringVar(&endpoint, "endpoint", envOr("CSI_ENDPOINT", "unix:///csi/csi.sock"), "CSI endpoint (env CSI_ENDPOINT)")
	fs.StringVar(&nodeID, "node-id", os.Getenv("NODE_NAME"), "this node's ID, the Kubernetes node name (env NODE_NAME)")
	fs.StringVar(&stateDir, "state-dir", "/var/lib/kubelet/plugins/csi.ringcache.io", "state, shared mounts and their logs (a hostPath with Bidirectional propagation)")
	fs.StringVar(&cacheNode, "cache-node", "127.0.0.1:9700", "peer address of the cache node on this host")
	fs.StringVar(&tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&mountBinary, "mount-binary", exe, "the binary whose mount subcommand is the mount process")
	fs.StringVar(&launcher, "launcher", "", `command prefix for mount processes, split on spaces, e.g. "nsenter --target 1 --mount --pid --"`)
	fs.Var(&mountArgs, "mount-arg", "extra flag for csi mount (repeatable), e.g. --mount-arg=--owners=3")
	fs.DurationVar(&unmountDelay, "unmount-delay", 30*time.Second, "how long a shared mount stays after its last target is unpublished")
	fs.DurationVar(&mountTimeout, "mount-timeout", 60*time.Second, "bound on starting a shared mount")
	fs.DurationVar(&repairInterval, "repair-interval", 30*time.Second, "how often broken shared mounts are repaired (0: only at start and on publish)")
	fs.StringVar(&volumesDir, "volumes-dir", "", "the only volumes and metadata engines this node mounts: one file per volume, file name = volume name, content = its metadata URL (cachenode's --volumes-dir format); without it the node mounts nothing unless --allow-request-metaurl")
	fs.BoolVar(&allowRequestURL, "allow-request-metaurl", false, "without --volumes-dir: mount the metadata engine a publish request's secret names (unsafe with inline volumes: any pod author chooses the engine)")
	fs.StringVar(&kubeletDir, "kubelet-dir", csi.DefaultKubeletDir, "the kubelet's root directory; publish and unpublish targets must be under its pods directory")
	fs.StringVar(&driverName, "driver-name", csi.DriverName, "CSI driver name")
	lf.register(fs)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	switch {
	case nodeID == "":
		return fmt.Errorf("%w: --node-id (or NODE_NAME) is required", errUsage)
	case tokenFile == "":
		return fmt.Errorf("%w: --token-file (or RINGCACHE_TOKEN_FILE) is required", errUsage)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	var trusted map[string]string
	if volumesDir != "" && allowRequestURL {
		return fmt.Errorf("%w: --allow-request-metaurl has no effect with --volumes-dir (the node's URLs are used); drop one", errUsage)
	}
	if volumesDir != "" {
		if trusted, err = cli.ReadVolumesDir(volumesDir); err != nil {
			return fmt.Errorf("%w: --volumes-dir: %v", errUsage, err)
		}
	}
	node, err := csi.NewNode(csi.NodeOptions{
		DriverName: driverName, Version: version(), NodeID: nodeID, StateDir: stateDir,
		MountBinary: mountBinary, Launcher: strings.Fields(launcher), MountArgs: mountArgs,
		CacheNode: cacheNode, TokenFile: tokenFile, TrustedEngines: trusted,
		AllowRequestMetaURL: allowRequestURL, KubeletDir: kubeletDir,
		UnmountDelay: unmountDelay, MountTimeout: mountTimeout, RepairInterval: repairInterval,
		Logger: log.With("service", "node"),
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	defer node.Close()
	l, err := csi.Listen(endpoint)
	if err != nil {
		return err
	}
	start := time.Now()
	node.Start(ctx)
	log.Info("node plugin serving", "endpoint", endpoint, "node_id", nodeID, "state_dir", stateDir,
		"kubelet_dir", kubeletDir, "volumes", len(trusted), "allow_request_metaurl", allowRequestURL, "cache_node", cacheNode, "launcher", launcher, "recovered_in", time.Since(start).Round(time.Millisecond).String())
	s := csi.NewServer(log)
	node.Register(s)
	return csi.Serve(ctx, s, l)
}
