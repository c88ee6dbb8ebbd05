package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringcache/ringcache/pkg/juice"
	"github.com/ringcache/ringcache/pkg/juice/ringstore"
)

// jfsIORetries is the --io-retries the mount passes to JuiceFS (its own
// default, passed explicitly because readBudget's arithmetic depends on it).
// JuiceFS's reader retries a failed block read this many times, and its
// metadata client uses the same count for Redis.
const jfsIORetries = 10

// probeTimeout bounds each block read JuiceFS retries after the ring
// storage's budget for that block is spent (ringstore.Options.ProbeTimeout).
const probeTimeout = 200 * time.Millisecond

// minRingBudget is the least time the ring storage may spend on a block
// before it first fails.
const minRingBudget = 5 * time.Second

// jfsRetryPauses is the total of the pauses JuiceFS v1.3.1's reader
// (pkg/vfs/reader.go, retry_time) makes between the attempts of one block
// read: (n-1)*300ms + 1ms before retry n, for retries 1..retries.
func jfsRetryPauses(retries int) time.Duration {
	var d time.Duration
	for n := 1; n <= retries; n++ {
		if n < 30 {
			d += time.Duration(n-1)*300*time.Millisecond + time.Millisecond
		} else {
			d += 10 * time.Second
		}
	}
	return d
}

// readBudget splits --read-timeout, the longest a reader waits for a block
// before it gets EIO, into the ring storage's budget for the block. One
// read is retries+1 JuiceFS attempts with jfsRetryPauses between them;
// each attempt asks the storage once or twice (a ranged read falls back to
// a whole-block read). The first asks get the budget, every later one only
// a probe of probeTimeout, so
//
//	read-timeout >= budget + pauses + (2*(retries+1)-1)*probe + 1s margin.
//
// It also returns the least read-timeout that leaves minRingBudget.
func readBudget(readTimeout time.Duration) (budget, minimum time.Duration) {
	overhead := jfsRetryPauses(jfsIORetries) + time.Duration(2*(jfsIORetries+1)-1)*probeTimeout + time.Second
	return readTimeout - overhead, overhead + minRingBudget
}

// subdirError turns a LookupDir failure of --subdir into a message for the
// operator. Symlinks are refused: version aliases (latest -> v2) are
// resolved by the model repository, not by mounts.
func subdirError(subdir string, err error) error {
	switch {
	case errors.Is(err, juice.ErrSymlink):
		return fmt.Errorf("--subdir %s: %w; mounts do not follow symlinks: name the directory it points to", subdir, err)
	case errors.Is(err, juice.ErrPathNotFound):
		return fmt.Errorf("--subdir %s does not exist in the volume: %w", subdir, err)
	case errors.Is(err, juice.ErrNotDir):
		return fmt.Errorf("--subdir %s is not a directory: %w", subdir, err)
	}
	return fmt.Errorf("--subdir %s: %w", subdir, err)
}

// checkSubdir looks subdir up in the volume's metadata before JuiceFS
// does, so a bad one fails at once with a clear message.
func checkSubdir(ctx context.Context, metaURL, subdir string) (*formatInfo, error) {
	m, format, err := juice.OpenMeta(ctx, metaURL)
	if err != nil {
		return nil, err
	}
	defer m.Shutdown()
	if subdir != "" {
		if _, err := juice.LookupDir(ctx, m, subdir); err != nil {
			return nil, subdirError(subdir, err)
		}
	}
	return &formatInfo{Name: format.Name, UUID: format.UUID, Storage: format.Storage, Bucket: format.Bucket, Shards: format.Shards}, nil
}

// formatInfo is what the mount needs of the volume's format.
type formatInfo struct {
	Name, UUID, Storage, Bucket string
	Shards                      int
}

// dropDefaultMux replaces net/http's DefaultServeMux with an empty one
// before JuiceFS starts. Importing JuiceFS's cmd package imports
// net/http/pprof (and grafana's godeltaprof), which register /debug/pprof
// handlers on DefaultServeMux, and JuiceFS serves DefaultServeMux on its
// --metrics listener (cmd/mount.go, exposeMetrics). With the fresh mux that
// listener serves only the /metrics handler JuiceFS registers later.
// (JuiceFS's other DefaultServeMux listener, the debug agent on
// 127.0.0.1:6060-6099, is off: the mount passes --no-agent.)
func dropDefaultMux() { http.DefaultServeMux = http.NewServeMux() }

// serveMountMetrics serves the ring storage's metrics on addr, and
// /debug/pprof there too when debugPprof is set. It returns the address
// and a stop function.
func serveMountMetrics(addr string, reg *prometheus.Registry, debugPprof bool, log *slog.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if debugPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	log.Info("ring metrics", "addr", l.Addr().String(), "debug_pprof", debugPprof)
	return func() { srv.Close() }, nil
}

// ringOptions are the ring storage's options for a mount with readTimeout.
func ringOptions(readTimeout time.Duration, log *slog.Logger, reg prometheus.Registerer) ringstore.Options {
	budget, _ := readBudget(readTimeout)
	return ringstore.Options{
		Logger: log, Registerer: reg,
		ReadBudget: budget, ProbeTimeout: probeTimeout,
		// JuiceFS's retries of one read end within readTimeout of its
		// first attempt; until then a block whose budget is spent gets
		// probes only.
		RetryWindow: readTimeout,
	}
}
