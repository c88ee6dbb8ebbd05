package blockstore

import (
	"io/fs"
	"strings"
	"sync"
)

// faults are the faults a faultFS injects; the zero faults inject none.
type faults struct {
	writeErr error                     // returned by File.Write
	syncErr  error                     // returned by File.Sync
	readErr  error                     // returned by File.ReadAt
	openErr  error                     // returned by Open
	onOpen   func(name string)         // called after an Open of a block file succeeds
	statFS   func() (DiskUsage, error) // replaces StatFS
}

// faultFS wraps an FS to inject faults.
type faultFS struct {
	FS

	mu sync.Mutex
	f  faults
}

func newFaultFS() *faultFS { return &faultFS{FS: OSFS{}} }

// set changes the faults.
func (f *faultFS) set(fn func(f *faults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.f)
}

func (f *faultFS) get() faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f
}

func (f *faultFS) CreateTemp(dir, pattern string) (File, error) {
	file, err := f.FS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Open(name string) (File, error) {
	faults := f.get()
	if faults.openErr != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: faults.openErr}
	}
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if faults.onOpen != nil && strings.Contains(name, blocksDirName) {
		faults.onOpen(name)
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) StatFS(path string) (DiskUsage, error) {
	if fn := f.get().statFS; fn != nil {
		return fn()
	}
	return f.FS.StatFS(path)
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.get().writeErr; err != nil {
		// Like a real short write: part of p may have reached the file.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.get().syncErr; err != nil {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return f.File.Sync()
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.get().readErr; err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.Name(), Err: err}
	}
	return f.File.ReadAt(p, off)
}
