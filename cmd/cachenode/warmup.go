package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/internal/bytesize"
	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/prefetch"
)

const warmupHelp = `Usage: cachenode warmup --volume NAME [flags] PATH...
       cachenode warmup --volume NAME [flags] --file-list FILE

Warms the ring: puts the blocks of the given files and directories (taken
recursively) of a JuiceFS volume on the cache nodes that own them, before
readers ask. Blocks are found in the volume's metadata engine (no mount),
grouped by owner and sent in batched Warm calls; owners fetch from the
object store the blocks they do not hold yet. Failed blocks are retried
with backoff; if an owner dies, its blocks go to their new owners.

PATHs are absolute within the volume ("/" is its root), e.g. /models/llama.
--file-list FILE holds one path per line; empty lines and lines starting
with '#' are skipped. Symlinks in a PATH are followed within the volume
(/models/m/latest -> v2 warms /models/m/v2, and says so); a symlink that
dangles, loops or leads out of the volume is an error. Symlinks found in a
directory are followed only into that directory's tree; others are skipped
with a warning. A PATH that matches no file (an empty directory) is an
error. See docs/warmup.md.

The volume's metadata URL may hold a password, so it never comes from
argv and is never printed. It is read from, in this order:
  --meta-url-file FILE          a file holding the URL (a mounted Secret)
  RINGCACHE_META_URL            environment
  RINGCACHE_VOLUME_<NAME>       environment, as "cachenode serve" reads it
The cluster token comes from --token-file or RINGCACHE_TOKEN_FILE.

Modes:
  (default)    warm, with a progress bar on a terminal and progress lines
               on stderr otherwise; a summary on stdout
  --check      report how much of the paths is cached, per node and file
  --dry-run    report what a warm-up would fetch and whether it fits the
               ring's free capacity
  --background check the flags, volume and paths, then warm in a detached
               process writing to --log-file, and return at once

Exit status: 0 done (every block warmed; or a check or dry run made),
1 some blocks failed or the warm-up could not run, 2 bad flags, an unknown
volume, or a path that is missing, malformed, through a bad symlink or
matching no file (in every mode).

Flags:
`

// warmupFlags are the flags of "cachenode warmup".
type warmupFlags struct {
	addr, tokenFile, volume, metaURLFile, fileList, logFile, logLevel string
	replicas, concurrency, batch, retries                             int
	bandwidth                                                         int64
	callTimeout, progressEvery                                        time.Duration
	check, dryRun, background, asJSON                                 bool
}

func (f *warmupFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:9700", "peer address of a cache node to learn the ring from (comma-separated for several)")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&f.volume, "volume", "", "name of the volume, as the cache nodes serve it (required)")
	fs.StringVar(&f.metaURLFile, "meta-url-file", "", "file holding the volume's metadata URL (else env RINGCACHE_META_URL or RINGCACHE_VOLUME_<NAME>)")
	fs.StringVar(&f.fileList, "file-list", "", "file with one volume path per line, in addition to PATH arguments")
	fs.IntVar(&f.replicas, "replicas", 1, "owners of each block that must hold it (the first N in ring order)")
	fs.Var(bytesize.Value{N: &f.bandwidth}, "bandwidth", "origin bytes per second for this warm-up across all owners, e.g. 200Mi or 200MiB (0: no budget)")
	fs.IntVar(&f.concurrency, "concurrency", prefetch.DefaultConcurrency, "Warm calls in flight per owner")
	fs.IntVar(&f.batch, "batch", prefetch.DefaultBatchSize, "keys per Warm call")
	fs.IntVar(&f.retries, "retries", prefetch.DefaultRetries, "retries of a failed block, with exponential backoff (0: none)")
	fs.DurationVar(&f.callTimeout, "call-timeout", prefetch.DefaultCallTimeout, "deadline of each call to a node")
	fs.BoolVar(&f.check, "check", false, "report how much is cached instead of warming")
	fs.BoolVar(&f.dryRun, "dry-run", false, "report what a warm-up would fetch and whether it fits, instead of warming")
	fs.BoolVar(&f.background, "background", false, "detach: warm in a background process logging to --log-file")
	fs.StringVar(&f.logFile, "log-file", "", "log of a --background warm-up (default: cachenode-warmup-<volume>-<time>.log in the temp dir)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON on stdout")
	fs.DurationVar(&f.progressEvery, "progress-interval", 2*time.Second, "interval of progress lines when stderr is not a terminal")
	fs.StringVar(&f.logLevel, "log-level", "warn", "level of logs on stderr: debug, info, warn or error")
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func runWarmup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("warmup", warmupHelp, stderr)
	var f warmupFlags
	f.register(fs)
	if err := cli.Parse(fs, args, true); err != nil {
		return err
	}
	paths, err := f.validate(fs.Args())
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, f.logLevel, "text")
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	tok, err := peer.LoadToken(f.tokenFile)
	if err != nil {
		return err
	}
	metaURL, err := cli.ReadMetaURL(f.metaURLFile, f.volume, os.Getenv)
	if err != nil {
		return err
	}

	// Everything a user can get wrong is checked before warming, and
	// before detaching.
	cr, err := prefetch.NewClusterRing(tok, splitAddrs(f.addr)...)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	defer cr.Close()
	plan, err := preparePlan(ctx, cr, metaURL, f.volume, paths)
	if err != nil {
		return err
	}

	printResolution(stderr, plan)
	if f.background {
		return detach(fs, &f, plan, stdout)
	}

	disp := newProgressDisplay(stderr, f.progressEvery)
	e, err := prefetch.New(prefetch.Options{
		Ring: cr, Replicas: f.replicas, BatchSize: f.batch, Concurrency: f.concurrency, Bandwidth: f.bandwidth,
		Retries: retriesOption(f.retries), CallTimeout: f.callTimeout, Logger: logger, OnProgress: disp.update,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case f.check:
		c, err := e.Check(ctx, plan)
		if err != nil {
			return err
		}
		if f.asJSON {
			return writeJSON(stdout, map[string]any{"mode": "check", "check": c, "resolved": plan.Resolved, "skipped_links": plan.SkippedLinks})
		}
		printCheck(stdout, c)
		return nil
	case f.dryRun:
		d, err := e.DryRun(ctx, plan)
		if err != nil {
			return err
		}
		if f.asJSON {
			return writeJSON(stdout, map[string]any{"mode": "dry-run", "dry_run": d, "resolved": plan.Resolved, "skipped_links": plan.SkippedLinks})
		}
		printDryRun(stdout, d)
		return nil
	}

	fmt.Fprintf(stderr, "warming %s: %d files, %d blocks, %s, replicas %d\n",
		plan.Volume, len(plan.Files), len(plan.Blocks), bytesize.Format(plan.Bytes), f.replicas)
	disp.start()
	res, runErr := e.Run(ctx, plan)
	disp.finish()
	if res != nil {
		if f.asJSON {
			if err := writeJSON(stdout, map[string]any{"mode": "warmup", "volume": plan.Volume, "volume_uuid": plan.VolumeUUID, "paths": plan.Paths,
				"resolved": plan.Resolved, "skipped_links": plan.SkippedLinks, "result": res}); err != nil {
				return err
			}
		} else {
			printResult(stdout, plan, res)
		}
	}
	if runErr != nil {
		return runErr
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("%d of %d blocks failed", len(res.Failed), res.Blocks)
	}
	return nil
}

// retriesOption maps the --retries flag (0: none) to Options.Retries (0:
// the default, negative: none).
func retriesOption(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// validate checks the flags and returns the paths to warm.
func (f *warmupFlags) validate(args []string) ([]string, error) {
	switch {
	case f.volume == "":
		return nil, usageErr("--volume is required")
	case f.check && f.dryRun:
		return nil, usageErr("--check and --dry-run exclude each other")
	case f.background && (f.check || f.dryRun):
		return nil, usageErr("--background is for warm-ups, not --check or --dry-run")
	case f.logFile != "" && !f.background:
		return nil, usageErr("--log-file is for --background")
	case f.replicas < 1:
		return nil, usageErr("--replicas must be at least 1")
	case f.concurrency < 1:
		return nil, usageErr("--concurrency must be at least 1")
	case f.batch < 1 || f.batch > prefetch.MaxBatchSize:
		return nil, usageErr("--batch must be in [1, %d]", prefetch.MaxBatchSize)
	case f.retries < 0:
		return nil, usageErr("--retries must not be negative")
	case f.callTimeout <= 0:
		return nil, usageErr("--call-timeout must be positive")
	case f.progressEvery <= 0:
		return nil, usageErr("--progress-interval must be positive")
	case f.tokenFile == "":
		return nil, usageErr("--token-file (or RINGCACHE_TOKEN_FILE) is required")
	case len(splitAddrs(f.addr)) == 0:
		return nil, usageErr("--addr is required")
	}
	paths := append([]string(nil), args...)
	if f.fileList != "" {
		more, err := readFileList(f.fileList)
		if err != nil {
			return nil, cli.InputError(err)
		}
		paths = append(paths, more...)
	}
	if len(paths) == 0 {
		return nil, usageErr("no paths: give PATH arguments or --file-list FILE")
	}
	return paths, nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// readFileList reads one path per line; blank lines and '#' comments are
// skipped.
func readFileList(name string) ([]string, error) {
	fl, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("file list: %w", err)
	}
	defer fl.Close()
	var out []string
	sc := bufio.NewScanner(fl)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("file list %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("file list %s holds no paths", name)
	}
	return out, nil
}

// preparePlan checks the volume against the ring and resolves the paths
// (prefetch.PlanVolume); mistakes in the input are cli.InputErrors (exit 2).
func preparePlan(ctx context.Context, cr *prefetch.ClusterRing, metaURL, volume string, paths []string) (*prefetch.Plan, error) {
	plan, err := prefetch.PlanVolume(ctx, cr, metaURL, volume, paths)
	if prefetch.IsInputError(err) {
		return nil, cli.InputError(err)
	}
	return plan, err
}

// detach re-runs this warm-up in a new session with its output going to a
// log file, and returns once it has started. The child gets the same flags
// (minus --background and --log-file) and environment, so secrets stay out
// of its argv too.
func detach(fs *flag.FlagSet, f *warmupFlags, plan *prefetch.Plan, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("background: %w", err)
	}
	logPath := f.logFile
	if logPath == "" {
		logPath = filepath.Join(os.TempDir(), fmt.Sprintf("cachenode-warmup-%s-%s.log", f.volume, time.Now().Format("20060102-150405")))
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("background: log file: %w", err)
	}
	defer lf.Close()
	args := []string{"warmup"}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "background" && fl.Name != "log-file" {
			args = append(args, "--"+fl.Name+"="+fl.Value.String())
		}
	})
	args = append(append(args, "--"), fs.Args()...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = lf, lf // stdin: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("background: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	fmt.Fprintf(stdout, "warm-up of %s (%d files, %d blocks, %s) detached: pid %d, log %s\n",
		plan.Volume, len(plan.Files), len(plan.Blocks), bytesize.Format(plan.Bytes), pid, logPath)
	return nil
}
