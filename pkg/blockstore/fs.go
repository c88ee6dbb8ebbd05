package blockstore

import (
	"io"
	"io/fs"
	"os"
	"time"
)

// FS is the file system interface the store works through: the few
// operations it needs, in the style of pebble's vfs. OSFS implements it
// for the real file system; tests wrap it to inject faults.
type FS interface {
	// MkdirAll creates dir and any missing parents, like os.MkdirAll.
	MkdirAll(dir string, perm fs.FileMode) error
	// CreateTemp creates a new file for writing in dir, like os.CreateTemp.
	CreateTemp(dir, pattern string) (File, error)
	// Open opens name for reading.
	Open(name string) (File, error)
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// Remove removes the file name.
	Remove(name string) error
	// ReadDir lists dir, like os.ReadDir.
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Chtimes sets the access and modification times of name.
	Chtimes(name string, atime, mtime time.Time) error
	// StatFS reports the space of the file system holding path. It returns
	// an error wrapping errors.ErrUnsupported where that is unknown, and
	// the store then does not enforce Options.MinFreeBytes.
	StatFS(path string) (DiskUsage, error)
	// Lock takes an exclusive lock on the file name, creating it if
	// needed, and fails at once if another holder has it. Closing the
	// returned Closer releases the lock.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS. Files from CreateTemp are written, files
// from Open are read.
type File interface {
	io.Writer
	io.ReaderAt
	io.Closer
	// Name returns the name the file was opened or created with.
	Name() string
	// Sync commits the file's contents to stable storage (fsync).
	Sync() error
	// Stat returns the file's FileInfo.
	Stat() (fs.FileInfo, error)
}

// DiskUsage is the space of a file system, in bytes.
type DiskUsage struct {
	// AvailBytes is the space available to an unprivileged writer.
	AvailBytes int64
	// TotalBytes is the size of the file system.
	TotalBytes int64
}

// OSFS is the FS of the operating system.
type OSFS struct{}

var _ FS = OSFS{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// CreateTemp implements FS.
func (OSFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open implements FS.
func (OSFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }

// Chtimes implements FS.
func (OSFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(name, atime, mtime)
}

// StatFS implements FS.
func (OSFS) StatFS(path string) (DiskUsage, error) { return statFS(path) }

// Lock implements FS.
func (OSFS) Lock(name string) (io.Closer, error) { return lockFile(name) }
