//go:build !linux

package blockstore

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func statFS(path string) (DiskUsage, error) {
	return DiskUsage{}, fmt.Errorf("statfs %s: %w", path, errors.ErrUnsupported)
}

// lockFile only creates the lock file: locking is implemented on Linux
// only, the platform ringcache runs on.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return f, nil
}
