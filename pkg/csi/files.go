package csi

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeSecretFile writes a secret to a 0600 file atomically, unless it
// holds it already.
func writeSecretFile(path, secret string) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == secret {
		return nil
	}
	return writeFileAtomic(path, []byte(secret), 0o600)
}

// refreshToken copies the token file into the state dir for the mount
// processes (launcher mode); the copy follows a rotated token at the next
// mount.
func (n *Node) refreshToken() error {
	b, err := os.ReadFile(n.o.TokenFile)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	return writeSecretFile(n.token, string(b))
}

// copyBinary copies src to dst (atomically, executable) unless dst has the
// same size and modification time.
func copyBinary(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return err
	}
	if di, err := os.Stat(dst); err == nil && di.Size() == si.Size() && di.ModTime().Equal(si.ModTime()) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".csi.tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), si.ModTime(), si.ModTime()); err != nil {
		return err
	}
	// A running mount process keeps its old inode.
	return os.Rename(tmp.Name(), dst)
}
