package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	jfscmd "github.com/juicedata/juicefs/cmd"
	"github.com/juicedata/juicefs/pkg/object"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/juice/ringstore"
)

const mountHelp = `Usage: csi mount [flags] MOUNTPOINT

Mounts a JuiceFS volume, or one directory of it, read-only at MOUNTPOINT and
stays in the foreground as its FUSE server. The volume's data blocks are
read through the ringcache ring: from their owners on the ring (learned from
the cache node on this host), hedged when an owner is slow, and from the
volume's own object store when the owners fail. The volume's format is
never changed: the ring storage replaces the storage for this client only.

The metadata URL may hold a password, so it never comes from argv:
  --meta-url-file FILE or RINGCACHE_META_URL

Client defaults for a ring (see docs/mount.md for the measurements):
no local disk cache (the ring is the cache; --cache-size 0) and a larger
read buffer (--buffer-size 1024 MiB), which bounds JuiceFS's read-ahead.
JuiceFS's --prefetch needs a local cache: it is passed only with
--cache-size > 0.

Metadata (attributes, directory entries, open files' chunk lists) is
cached for --meta-cache (default 1h): model versions are immutable, and
open files keep reading through a metadata engine restart or failover.

A block read that neither the ring nor the origin can answer fails with
EIO after --read-timeout (default 30s), JuiceFS's own retries included,
and the mount log names the block and the cause.

No port of a mount serves /debug/pprof unless --debug-pprof is given: the
mount passes --no-agent to JuiceFS (no debug agent on 127.0.0.1:6060-6099)
and JuiceFS's --juicefs-metrics listener serves /metrics only.

Flags:
`

type mountFlags struct {
	metaURLFile, node, tokenFile, subdir, metricsListen, jfsMetrics, cacheDir string
	cacheSize, bufferSize, prefetch, owners                                   int
	direct, debugPprof                                                        bool
	readTimeout, metaCache                                                    time.Duration
	logLevel                                                                  string
}

func runMount(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("mount", mountHelp, stderr)
	var f mountFlags
	fs.StringVar(&f.metaURLFile, "meta-url-file", "", "file holding the volume's metadata URL (or env RINGCACHE_META_URL)")
	fs.StringVar(&f.node, "node", "127.0.0.1:9700", "peer address of the cache node on this host")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&f.subdir, "subdir", "", "mount only this directory of the volume")
	f.bufferSize = 1024
	fs.Var(bytesize.MiBValue{N: &f.cacheSize}, "cache-size", "JuiceFS local cache: MiB as a bare number (JuiceFS's unit), or e.g. 10Gi or 10GiB (0: none, the ring is the cache)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "JuiceFS local cache directory when --cache-size > 0 (default: JuiceFS's own)")
	fs.Var(bytesize.MiBValue{N: &f.bufferSize}, "buffer-size", "JuiceFS read buffer (bounds read-ahead): MiB as a bare number, or e.g. 1Gi or 1GiB")
	fs.IntVar(&f.prefetch, "prefetch", 1, "JuiceFS blocks prefetched in parallel into the local cache after a small read; needs --cache-size > 0 (JuiceFS disables it without a local cache)")
	fs.IntVar(&f.owners, "owners", 2, "ranked owners a block read tries before the origin")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:0", `address for ringcache mount metrics ("off" to disable)`)
	fs.StringVar(&f.jfsMetrics, "juicefs-metrics", "127.0.0.1:0", "address for the JuiceFS client's own metrics (/metrics only)")
	fs.BoolVar(&f.debugPprof, "debug-pprof", false, "serve /debug/pprof on --metrics-listen (unauthenticated: only for debugging)")
	fs.DurationVar(&f.readTimeout, "read-timeout", 30*time.Second, "longest a read waits for a block the ring and the origin cannot serve before it fails with EIO, JuiceFS's retries included")
	fs.DurationVar(&f.metaCache, "meta-cache", time.Hour, "how long the kernel and JuiceFS keep attributes, entries and open files' chunk lists without asking the metadata engine (0: JuiceFS's 1s defaults); keeps open files reading through a metadata outage")
	fs.BoolVar(&f.direct, "direct", false, "do not use the ring: a plain JuiceFS client reading the origin (for comparisons)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := cli.Parse(fs, args, true); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one MOUNTPOINT", errUsage)
	}
	mp := fs.Arg(0)
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The one lookup (internal/cli): --meta-url-file, then
	// RINGCACHE_META_URL; the volume's name is not known yet. Every
	// failure is a usage error here.
	metaURL, err := cli.ReadMetaURL(f.metaURLFile, "", os.Getenv)
	if err != nil && !errors.Is(err, errUsage) {
		err = fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if f.subdir != "" {
		clean := path.Clean("/" + f.subdir)
		if strings.Contains(f.subdir, "..") || clean == "/" {
			return fmt.Errorf("%w: --subdir %q must name a directory inside the volume without ..", errUsage, f.subdir)
		}
		f.subdir = clean
	}
	if f.cacheSize < 0 || f.bufferSize < 32 || f.prefetch < 0 || f.owners < 1 || f.metaCache < 0 || f.metaCache > 24*time.Hour {
		return fmt.Errorf("%w: --cache-size >= 0, --buffer-size >= 32, --prefetch >= 0, --owners >= 1 and 0 <= --meta-cache <= 24h are required", errUsage)
	}
	if _, min := readBudget(f.readTimeout); f.readTimeout < min {
		return fmt.Errorf("%w: --read-timeout must be at least %v (JuiceFS's %d retries of a read take %v of it)", errUsage, min, jfsIORetries, min-minRingBudget)
	}

	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	format, err := checkSubdir(lctx, metaURL, f.subdir)
	cancel()
	if err != nil {
		return err
	}
	// Without a local cache JuiceFS turns --prefetch off (chunk.Config's
	// SelfCheck, with a warning): pass it only where it runs.
	prefetch := f.prefetch
	if f.cacheSize == 0 {
		prefetch = 0
	}
	jargs := []string{"juicefs", "mount", metaURL, mp,
		"--read-only", "--no-usage-report", "--no-bgjob", "--backup-meta", "0", "--no-agent",
		"--cache-size", strconv.Itoa(f.cacheSize), "--buffer-size", strconv.Itoa(f.bufferSize),
		"--prefetch", strconv.Itoa(prefetch), "--metrics", f.jfsMetrics, "--no-syslog",
		"--io-retries", strconv.Itoa(jfsIORetries), "--get-timeout", f.readTimeout.String(),
	}
	if f.metaCache > 0 {
		// Model versions are immutable: long metadata caches cost no
		// staleness and let open files keep reading while the metadata
		// engine restarts or fails over (docs/operations.md).
		mc := f.metaCache.String()
		jargs = append(jargs, "--attr-cache", mc, "--entry-cache", mc, "--dir-entry-cache", mc, "--open-cache", mc)
	}
	switch {
	case f.cacheSize == 0:
		jargs = append(jargs, "--cache-dir", "memory")
	case f.cacheDir != "":
		jargs = append(jargs, "--cache-dir", f.cacheDir)
	}
	if f.subdir != "" {
		jargs = append(jargs, "--subdir", f.subdir)
	}
	if !f.direct {
		if format.Shards > 1 {
			return fmt.Errorf("volume %s is sharded over %d buckets; ringcache mounts do not support sharded volumes", format.Name, format.Shards)
		}
		if f.tokenFile == "" {
			return fmt.Errorf("%w: --token-file (or RINGCACHE_TOKEN_FILE) is required", errUsage)
		}
		// JuiceFS runs a mount as two processes of this binary: a
		// supervisor, which holds the FUSE device and restarts the server
		// if it dies, and the server (JFS_SUPERVISOR set), which serves
		// reads. Only the server needs the ring.
		if os.Getenv("JFS_SUPERVISOR") != "" {
			reg := prometheus.NewRegistry()
			if f.metricsListen != "off" {
				stop, err := serveMountMetrics(f.metricsListen, reg, f.debugPprof, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			object.Register(ringstore.StorageName, ringstore.Creator(ringOptions(f.readTimeout, log.With("component", "ringstore"), reg)))
		} else {
			object.Register(ringstore.StorageName, ringstore.OriginCreator())
		}
		ep := ringstore.Endpoint{
			LocalNode: f.node, OriginStorage: strings.ToLower(format.Storage), OriginBucket: format.Bucket,
			Volume: format.UUID, Prefix: format.Name + "/", TokenFile: f.tokenFile, Owners: f.owners,
		}
		jargs = append(jargs, "--storage", ringstore.StorageName, "--bucket", ep.String())
	}
	dropDefaultMux()
	budget, _ := readBudget(f.readTimeout)
	log.Info("mounting", "read_timeout", f.readTimeout.String(), "ring_block_budget", budget.String(), "volume", format.Name, "uuid", format.UUID, "mountpoint", mp, "subdir", f.subdir, "ring", !f.direct, "node", f.node)
	// JuiceFS's Main runs the FUSE server until the mount point is
	// unmounted or the process is signalled.
	return jfscmd.Main(jargs)
}
