// Command cachenode is the ringcache cache node daemon and its operator
// subcommands.
//
//	cachenode serve   run a cache node (the DaemonSet's container)
//	cachenode status  show a node's view of the ring, its store and counters
//	cachenode warmup  warm the ring with files of a volume, or check them
//	cachenode controller  run the Warmup controller (Kubernetes)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringcache/ringcache/internal/cli"
)

const usage = `cachenode: a ringcache cache node and its operator commands.

Usage:
  cachenode serve  [flags]   run a cache node
  cachenode status [flags]   show a node's ring view, store usage and hit ratio
  cachenode warmup [flags] --volume NAME PATH...
                             warm the ring with files of a volume (--check: how
                             much is cached; --dry-run: what a warm-up would fetch)
  cachenode controller [flags] run the Warmup controller (Kubernetes)
  cachenode help   COMMAND   show a command's flags and environment

Run "cachenode COMMAND --help" for details.
`

// errUsage marks errors caused by bad flags: exit code 2.
var errUsage = cli.ErrUsage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "status":
		err = runStatus(ctx, rest, stdout, stderr)
	case "warmup":
		err = runWarmup(ctx, rest, stdout, stderr)
	case "controller":
		err = runController(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		if len(rest) == 1 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cachenode: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return cli.ExitCode(stderr, "cachenode", args[0], err)
}
