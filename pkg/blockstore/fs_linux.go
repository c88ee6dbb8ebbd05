package blockstore

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

func statFS(path string) (DiskUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return DiskUsage{}, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	bsize := int64(st.Bsize)
	return DiskUsage{
		AvailBytes: int64(st.Bavail) * bsize,
		TotalBytes: int64(st.Blocks) * bsize,
	}, nil
}

// lockFile takes a flock(2) lock. flock locks belong to the open file
// description, so a second lock of the same file fails even within one
// process.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}
