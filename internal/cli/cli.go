// Package cli holds what ringcache's commands (cachenode, csi) share:
// subcommand flag sets that print their help, usage errors, and exit codes
// (0 success or --help, 1 failure, 2 bad usage), the one lookup of a
// volume's metadata URL (ReadMetaURL: --meta-url-file, then
// RINGCACHE_META_URL, then RINGCACHE_VOLUME_<NAME>), and the one reader of
// a volumes dir, one metadata-URL file per volume (ReadVolumesDir,
// ReadVolumeFile: cachenode serve and controller, csi node).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// ErrUsage marks errors caused by bad flags or arguments: exit code 2.
var ErrUsage = errors.New("usage")

// NewFlagSet returns a subcommand's flag set whose usage prints help and
// the flags.
func NewFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args: a bad flag is a usage error, --help is
// flag.ErrHelp, and positional arguments are refused unless allowArgs.
func Parse(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if !allowArgs && fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	return nil
}

// ExitCode reports err of `prog cmd` on stderr and returns the exit code.
func ExitCode(stderr io.Writer, prog, cmd string, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, cmd, err)
		return 1
	}
}
