package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxMetaURLFile bounds a metadata URL file of a volumes dir: a metadata URL
// is a few hundred bytes; a larger file is not one.
const MaxMetaURLFile = 16 << 10

// ErrVolumeName: a name that cannot be a volume of a volumes dir.
var ErrVolumeName = errors.New("not a volume name")

// volumeFileRE is the rule of Kubernetes Secret keys without a leading
// dot (dot entries are the Secret volume's own).
var volumeFileRE = regexp.MustCompile(`^[-_a-zA-Z0-9][-._a-zA-Z0-9]{0,252}$`)

// CheckVolumeName tells whether name may be a volume of a volumes dir (an
// error wrapping ErrVolumeName if not).
func CheckVolumeName(name string) error {
	if !volumeFileRE.MatchString(name) {
		return fmt.Errorf("volume %q: %w of a volumes dir (1-253 characters a-z, A-Z, 0-9, '-', '_', '.', not starting with '.')", name, ErrVolumeName)
	}
	return nil
}

// ReadVolumesDir reads every volume of the volumes dir dir: volume name →
// metadata URL.
//
// A volumes dir (--volumes-dir of cachenode serve, cachenode controller
// and csi node) holds one file per volume: the file name is the volume's
// name, its content the volume's metadata URL. It is usually a mounted
// Kubernetes Secret, one key per volume. ReadVolumesDir and ReadVolumeFile
// are its one reader; they apply the same rules to every file:
//
//   - Entries whose name starts with "." are skipped: a Secret volume's own
//     ..data link and ..<timestamp> directory. So are directories, after
//     following symlinks (a Secret's keys are symlinks into ..data; a
//     hostPath may hold lost+found).
//   - Every other entry is a volume. Its name must be a Secret key that
//     does not start with ".": 1-253 characters a-z, A-Z, 0-9, '-', '_',
//     '.' (ErrVolumeName).
//   - It must be a regular file (after following symlinks, to anywhere),
//     readable, of at most MaxMetaURLFile bytes.
//   - Its content, trimmed of leading and trailing white space (a trailing
//     newline), is the URL: it must not be empty nor hold a control
//     character (two lines are not one URL).
//
// Any file breaking these rules is an error; an empty dir is not (the
// caller decides whether no volumes is one). Errors name the volume and
// the file, never the file's content.
func ReadVolumesDir(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		// A directory is skipped whatever its name (lost+found).
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
			continue
		}
		u, isDir, err := readVolumeFile(dir, e.Name())
		switch {
		case err != nil:
			return nil, err
		case !isDir:
			out[e.Name()] = u
		}
	}
	return out, nil
}

// ReadVolumeFile reads the metadata URL of volume from the volumes dir dir,
// by the rules of ReadVolumesDir (so it reads at every call what
// ReadVolumesDir would read). It is an error wrapping fs.ErrNotExist when the dir
// has no such file (or a directory of that name). Errors never contain the
// URL.
func ReadVolumeFile(dir, volume string) (string, error) {
	u, isDir, err := readVolumeFile(dir, volume)
	if isDir {
		// ReadVolumesDir skips directories: no such volume.
		return "", fmt.Errorf("volume %q: %w: %s is a directory, not a metadata url file", volume, fs.ErrNotExist, filepath.Join(dir, volume))
	}
	return u, err
}

// readVolumeFile is ReadVolumeFile, telling a directory apart (isDir, no
// error).
func readVolumeFile(dir, volume string) (url string, isDir bool, err error) {
	if err := CheckVolumeName(volume); err != nil {
		return "", false, err
	}
	path := filepath.Join(dir, volume)
	// Stat before opening: opening a FIFO would block until a writer came.
	fi, err := os.Stat(path)
	if err != nil {
		return "", false, fmt.Errorf("volume %q: %w", volume, err)
	}
	if fi.IsDir() {
		return "", true, nil
	}
	if !fi.Mode().IsRegular() {
		return "", false, fmt.Errorf("volume %q: metadata url file %s is not a regular file (%s)", volume, path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false, fmt.Errorf("volume %q: %w", volume, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetaURLFile+1))
	if err != nil {
		return "", false, fmt.Errorf("volume %q: %w", volume, err)
	}
	if url, err = metaURLOfFile(b); err != nil {
		return "", false, fmt.Errorf("volume %q: metadata url file %s %w", volume, path, err)
	}
	return url, false, nil
}

// metaURLOfFile returns the metadata URL a volumes dir file holds, or why
// it holds none (an error to follow "metadata url file X"; never the
// content).
func metaURLOfFile(b []byte) (string, error) {
	if len(b) > MaxMetaURLFile {
		return "", fmt.Errorf("is over %d bytes: not a metadata url", MaxMetaURLFile)
	}
	u := strings.TrimSpace(string(b))
	if u == "" {
		return "", errors.New("is empty")
	}
	if strings.IndexFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", errors.New("holds a control character or more than one line: not one metadata url")
	}
	return u, nil
}
