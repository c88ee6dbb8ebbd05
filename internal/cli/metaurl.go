package cli

import (
	"fmt"
	"os"
	"strings"
)

// MetaURLEnv is the environment variable holding a metadata URL for any
// volume.
const MetaURLEnv = "RINGCACHE_META_URL"

// VolumeEnvPrefix starts the environment variables holding one volume's
// metadata URL each, RINGCACHE_VOLUME_<NAME> (see VolumeEnv).
const VolumeEnvPrefix = "RINGCACHE_VOLUME_"

// VolumeEnv returns the variable holding volume's metadata URL: its name
// upper case with "-" as "_" ("llama-3": RINGCACHE_VOLUME_LLAMA_3).
func VolumeEnv(volume string) string {
	return VolumeEnvPrefix + strings.ToUpper(strings.ReplaceAll(volume, "-", "_"))
}

// ReadMetaURL is the one lookup of a volume's metadata URL by the
// commands (cachenode warmup, csi mount). A metadata URL may hold a
// password, so it never comes from argv; the first of these that is set
// wins:
//
//  1. file, the --meta-url-file flag: the file's content, trimmed. A file
//     that cannot be read is an error, and an empty one a usage error;
//     neither falls back to the environment.
//  2. the environment variable RINGCACHE_META_URL.
//  3. the environment variable RINGCACHE_VOLUME_<NAME> of volume (as
//     "cachenode serve" reads it), when volume is not "".
//
// Nothing set is a usage error naming what to set. getenv is os.Getenv
// outside tests. Errors never contain the URL.
func ReadMetaURL(file, volume string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--meta-url-file: %w", err)
		}
		u := strings.TrimSpace(string(b))
		if u == "" {
			return "", InputError(fmt.Errorf("--meta-url-file %s is empty", file))
		}
		return u, nil
	}
	if u := strings.TrimSpace(getenv(MetaURLEnv)); u != "" {
		return u, nil
	}
	if volume == "" {
		return "", fmt.Errorf("%w: no metadata url: give --meta-url-file FILE, or set %s", ErrUsage, MetaURLEnv)
	}
	name := VolumeEnv(volume)
	if u := strings.TrimSpace(getenv(name)); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("%w: no metadata url for volume %q: give --meta-url-file FILE, or set %s or %s", ErrUsage, volume, MetaURLEnv, name)
}

// InputError marks err as a user error that is not about flag syntax (a
// missing path, an empty file, an unknown volume): errors.Is(err,
// ErrUsage), so exit code 2, with err's own message.
func InputError(err error) error { return inputError{err} }

type inputError struct{ err error }

func (e inputError) Error() string        { return e.err.Error() }
func (e inputError) Unwrap() error        { return e.err }
func (e inputError) Is(target error) bool { return target == ErrUsage }
