package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	jfscmd "github.com/juicedata/juicefs/cmd"
	"github.com/juicedata/juicefs/pkg/object"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/juice"
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
no local disk cache (the ring is the cache; --cache-size 0), and a larger
read-ahead (--buffer-size 1024 MiB, --prefetch 4) so that sequential reads of
large weight shards keep several owners busy.

Flags:
`

type mountFlags struct {
	metaURLFile, node, tokenFile, subdir, metricsListen, jfsMetrics, cacheDir string
	cacheSize, bufferSize, prefetch, owners                                   int
	direct                                                                    bool
	logLevel                                                                  string
}

func runMount(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("mount", mountHelp, stderr)
	var f mountFlags
	fs.StringVar(&f.metaURLFile, "meta-url-file", "", "file holding the volume's metadata URL (or env RINGCACHE_META_URL)")
	fs.StringVar(&f.node, "node", "127.0.0.1:9700", "peer address of the cache node on this host")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&f.subdir, "subdir", "", "mount only this directory of the volume")
	fs.IntVar(&f.cacheSize, "cache-size", 0, "JuiceFS local cache in MiB (0: none, the ring is the cache)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "JuiceFS local cache directory when --cache-size > 0 (default: JuiceFS's own)")
	fs.IntVar(&f.bufferSize, "buffer-size", 1024, "JuiceFS read buffer in MiB (bounds read-ahead)")
	fs.IntVar(&f.prefetch, "prefetch", 4, "JuiceFS blocks prefetched in parallel")
	fs.IntVar(&f.owners, "owners", 2, "ranked owners a block read tries before the origin")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:0", `address for ringcache mount metrics and /debug/pprof ("off" to disable)`)
	fs.StringVar(&f.jfsMetrics, "juicefs-metrics", "127.0.0.1:0", "address for the JuiceFS client's own metrics")
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
	metaURL, err := readMetaURL(f.metaURLFile)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if f.subdir != "" {
		clean := path.Clean("/" + f.subdir)
		if strings.Contains(f.subdir, "..") || clean == "/" {
			return fmt.Errorf("%w: --subdir %q must name a directory inside the volume without ..", errUsage, f.subdir)
		}
		f.subdir = clean
	}
	if f.cacheSize < 0 || f.bufferSize < 32 || f.prefetch < 0 || f.owners < 1 {
		return fmt.Errorf("%w: --cache-size >= 0, --buffer-size >= 32, --prefetch >= 0 and --owners >= 1 are required", errUsage)
	}

	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	format, err := juice.LoadFormat(lctx, metaURL)
	cancel()
	if err != nil {
		return err
	}
	jargs := []string{"juicefs", "mount", metaURL, mp,
		"--read-only", "--no-usage-report", "--no-bgjob", "--backup-meta", "0",
		"--cache-size", strconv.Itoa(f.cacheSize), "--buffer-size", strconv.Itoa(f.bufferSize),
		"--prefetch", strconv.Itoa(f.prefetch), "--metrics", f.jfsMetrics, "--no-syslog",
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
				l, err := net.Listen("tcp", f.metricsListen)
				if err != nil {
					return fmt.Errorf("metrics listen: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				mux.HandleFunc("/debug/pprof/", pprof.Index)
				mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(l)
				defer srv.Close()
				log.Info("ring metrics", "addr", l.Addr().String())
			}
			object.Register(ringstore.StorageName, ringstore.Creator(ringstore.Options{
				Logger: log.With("component", "ringstore"), Registerer: reg,
			}))
		} else {
			object.Register(ringstore.StorageName, ringstore.OriginCreator())
		}
		ep := ringstore.Endpoint{
			LocalNode: f.node, OriginStorage: strings.ToLower(format.Storage), OriginBucket: format.Bucket,
			Volume: format.UUID, Prefix: format.Name + "/", TokenFile: f.tokenFile, Owners: f.owners,
		}
		jargs = append(jargs, "--storage", ringstore.StorageName, "--bucket", ep.String())
	}
	log.Info("mounting", "volume", format.Name, "uuid", format.UUID, "mountpoint", mp, "subdir", f.subdir, "ring", !f.direct, "node", f.node)
	// JuiceFS's Main runs the FUSE server until the mount point is
	// unmounted or the process is signalled.
	return jfscmd.Main(jargs)
}

// readMetaURL reads the metadata URL from a file or RINGCACHE_META_URL.
func readMetaURL(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--meta-url-file: %w", err)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("--meta-url-file %s is empty", file)
	}
	if s := strings.TrimSpace(os.Getenv("RINGCACHE_META_URL")); s != "" {
		return s, nil
	}
	return "", errors.New("the metadata URL is required: --meta-url-file or RINGCACHE_META_URL")
}
