package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/node"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/ring"
)

const serveHelp = `Usage: cachenode serve [flags]

Runs a cache node: it holds JuiceFS blocks on local disk, owns a share of
the consistent-hash ring, fetches the blocks it owns from the origin object
store once, and serves them to mounts and other nodes over the peer port.

Volumes: a node serves the JuiceFS volumes it is given, each a name and a
metadata URL (which may hold a password, so it never comes from argv):
  --volumes-dir DIR            one file per volume: file name = volume name,
                               content = metadata URL (a mounted Secret)
  RINGCACHE_VOLUME_<NAME>=URL  environment; <NAME> is upper-cased, "_" in it
                               stands for "-" in the volume name
The node loads each volume's format (UUID, storage, bucket, credentials,
block size) from its metadata engine and reads blocks from the real object
store the way a JuiceFS client does.

Cluster token: every peer call must carry it. From --token-file or
RINGCACHE_TOKEN_FILE (at least 16 printable characters). Mounts, CSI
plugins and controllers hold it too.

Gossip key: encrypts and authenticates gossip, so that only cache nodes
join the ring. Only cache nodes hold it; it is required and is never the
token or derived from it. From --gossip-key-file or
RINGCACHE_GOSSIP_KEY_FILE: one key per line, each the base64 of 32 random
bytes (head -c 32 /dev/urandom | base64); the first encrypts, every one
decrypts, so a rotation adds the new key, makes it first, then drops the
old one (docs/operations.md). Refused gossip is counted in
ringcache_gossip_refused_total and logged as "gossip refused".

Failure detection: with --gossip-profile lan a dead node is dropped from
other nodes' rings within about 5-10 s (see the "failure_detection" log
field at start); "local" is faster, for tests on one machine.

Flags:
`

type serveFlags struct {
	dataDir, nodeID, peerListen, gossipListen, httpListen, advertise string
	seeds, volumesDir, tokenFile, gossipKeyFile, gossipProfile       string
	logLevel, logFormat                                              string
	capacity, minFree, originBandwidth                               int64
	weight, originConcurrency, placementVersion, partitions          int
	load                                                             float64
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for blocks and the node ID (required; the NVMe hostPath)")
	fs.Var(bytesize.Value{N: &f.capacity}, "capacity", "block bytes to keep, e.g. 500Gi or 500GiB (required)")
	fs.Var(bytesize.Value{N: &f.minFree}, "min-free", "free space to leave on the data dir's file system (default 1GiB)")
	fs.StringVar(&f.nodeID, "node-id", "", "stable ring ID (default: persisted in DATA_DIR/node-id)")
	fs.IntVar(&f.weight, "weight", 0, "ring weight 1..8 (default: one per started 256 GiB of capacity)")
	fs.StringVar(&f.peerListen, "listen", ":9700", "peer gRPC listen address")
	fs.StringVar(&f.gossipListen, "gossip-listen", ":9701", "gossip (memberlist) listen address, TCP and UDP")
	fs.StringVar(&f.httpListen, "http-listen", ":9702", `metrics and health listen address ("off" to disable)`)
	fs.StringVar(&f.advertise, "advertise-addr", os.Getenv("POD_IP"), "IP other nodes and mounts reach this node at (env POD_IP)")
	fs.StringVar(&f.seeds, "seeds", os.Getenv("RINGCACHE_SEEDS"), "comma-separated gossip seeds host:port, e.g. a headless Service (env RINGCACHE_SEEDS)")
	fs.StringVar(&f.volumesDir, "volumes-dir", "", "directory with one metadata-URL file per volume")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&f.gossipKeyFile, "gossip-key-file", os.Getenv("RINGCACHE_GOSSIP_KEY_FILE"), "file holding the gossip key(s), only cache nodes have it (required; env RINGCACHE_GOSSIP_KEY_FILE)")
	fs.IntVar(&f.originConcurrency, "origin-concurrency", 16, "concurrent origin fetches on this node")
	fs.Var(bytesize.Value{N: &f.originBandwidth}, "origin-bandwidth", "origin bytes per second on this node, e.g. 200Mi or 200MiB (0: unlimited)")
	fs.StringVar(&f.gossipProfile, "gossip-profile", "lan", `gossip timing: "lan" or "local"`)
	fs.IntVar(&f.placementVersion, "placement-version", 1, "placement parameters version; only equal versions share a ring")
	fs.IntVar(&f.partitions, "partitions", 7919, "ring partitions (cluster-wide)")
	fs.Float64Var(&f.load, "load", 1.25, "bounded-load factor (cluster-wide)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or text")
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("serve", serveHelp, stderr)
	var f serveFlags
	f.register(fs)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	o, err := f.options(os.Environ())
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	o.Logger = logger
	warnLooseKeyFile(logger, f.gossipKeyFile)
	// A node allocates a block-sized buffer per read; the default GOGC of
	// 100 spends a quarter of the serving CPU in the collector. Blocks are
	// short-lived, so trade some memory for CPU unless the operator chose.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	n, err := node.Start(ctx, o)
	if err != nil {
		return err
	}
	werr := n.Wait(ctx)
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace+5*time.Second)
	defer cancel()
	return errors.Join(werr, n.Shutdown(sctx))
}

// options turns flags and environment into node options.
func (f *serveFlags) options(environ []string) (node.Options, error) {
	o := node.Options{
		DataDir: f.dataDir, NodeID: f.nodeID, CapacityBytes: f.capacity, MinFreeBytes: f.minFree,
		Weight: f.weight, PeerListen: f.peerListen, GossipListen: f.gossipListen,
		HTTPListen: f.httpListen, AdvertiseAddr: f.advertise, GossipProfile: f.gossipProfile,
		OriginConcurrency: f.originConcurrency, OriginBandwidth: f.originBandwidth,
		PlacementVersion: f.placementVersion,
	}
	o.Placement.PartitionCount, o.Placement.Load = f.partitions, f.load
	if f.gossipProfile != "lan" && f.gossipProfile != "local" {
		return o, fmt.Errorf("--gossip-profile must be lan or local, not %q", f.gossipProfile)
	}
	if f.originConcurrency < 1 {
		return o, errors.New("--origin-concurrency must be at least 1")
	}
	for _, s := range strings.Split(f.seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Seeds = append(o.Seeds, s)
		}
	}
	if f.tokenFile == "" {
		return o, errors.New("--token-file (or RINGCACHE_TOKEN_FILE) is required")
	}
	tok, err := peer.LoadToken(f.tokenFile)
	if err != nil {
		return o, err
	}
	o.Token = tok
	if f.gossipKeyFile == "" {
		return o, fmt.Errorf("--gossip-key-file (or RINGCACHE_GOSSIP_KEY_FILE) is required: gossip is keyed with a secret only cache nodes hold, not the cluster token (%s)", ring.GenerateKeyHint)
	}
	if o.GossipKeys, err = ring.LoadKeyFile(f.gossipKeyFile); err != nil {
		return o, err
	}
	vols, err := loadVolumes(f.volumesDir, environ)
	if err != nil {
		return o, err
	}
	o.Volumes = vols
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// warnLooseKeyFile warns if the gossip key file may be read by its group
// or others: anyone who reads it can join the ring and claim partitions.
// It does not refuse such a file: the mode is the operator's (a Secret
// volume with fsGroup is group-readable), the warning tells them.
func warnLooseKeyFile(logger *slog.Logger, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return // LoadKeyFile already read it; a race is not worth a warning
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		logger.Warn("gossip key file is readable by group or others: whoever reads it can join the ring; make it readable by the cache node only (chmod 600, or defaultMode 0400 on the Secret volume)",
			"path", path, "mode", fmt.Sprintf("%#o", perm))
	}
}

const volumeEnvPrefix = cli.VolumeEnvPrefix

// loadVolumes reads volume sources from dir (cli.ReadVolumesDir) and the
// environment.
func loadVolumes(dir string, environ []string) ([]node.VolumeSource, error) {
	byName := map[string]string{}
	if dir != "" {
		var err error
		if byName, err = cli.ReadVolumesDir(dir); err != nil {
			return nil, fmt.Errorf("volumes dir: %w", err)
		}
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, volumeEnvPrefix) || len(k) == len(volumeEnvPrefix) {
			continue
		}
		name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, volumeEnvPrefix)), "_", "-")
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("volume %q is configured both in the volumes dir and in %s", name, k)
		}
		if byName[name] = strings.TrimSpace(v); byName[name] == "" {
			return nil, fmt.Errorf("volume %q: %s is empty", name, k)
		}
	}
	if len(byName) == 0 {
		return nil, errors.New("no volumes: give --volumes-dir or RINGCACHE_VOLUME_<NAME> variables")
	}
	var out []node.VolumeSource
	for name, url := range byName {
		out = append(out, node.VolumeSource{Name: name, MetaURL: url})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text, not %q", format)
}
