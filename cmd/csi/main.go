// Command csi is the ringcache CSI plugin's binary (driver
// csi.ringcache.io): the node plugin, the controller, and the mount process
// the node plugin starts, a JuiceFS v1.3.1 client, built from the JuiceFS
// library, in which the ring storage is registered, that mounts a volume
// (or one directory of it) read-only with the volume's data reached
// through the ring. See docs/csi.md.
//
//	csi node [flags]               serve the CSI identity and node services
//	csi controller [flags]         serve the CSI identity and controller services
//	csi mount [flags] MOUNTPOINT   mount a volume read-only through the ring
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

const usage = `csi: the ringcache CSI plugin binary.

Usage:
  csi node [flags]               serve the CSI identity and node services (unix socket)
  csi controller [flags]         serve the CSI identity and controller services
  csi mount [flags] MOUNTPOINT   mount a JuiceFS volume read-only through the ring
  csi help  COMMAND

The driver is csi.ringcache.io; docs/csi.md describes it.
`

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
	case "mount":
		err = runMount(ctx, rest, stderr)
	case "node":
		err = runNode(ctx, rest, stderr)
	case "controller":
		err = runController(ctx, rest, stderr)
	case "help", "-h", "--help":
		if len(rest) == 1 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "csi: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	return cli.ExitCode(stderr, "csi", args[0], err)
}
