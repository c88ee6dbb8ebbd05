package juicetest

import (
	"errors"
	"fmt"
	"os"

	"github.com/juicedata/juicefs/pkg/meta"
)

// MkdirAll creates the directory dir (absolute in the volume) and its
// parents; an existing one is fine.
func (w *Writer) MkdirAll(dir string) error {
	if e := w.fs.MkdirAll(meta.Background(), dir, 0o755, 0); e != 0 && !errors.Is(e, os.ErrExist) {
		return fmt.Errorf("juicetest: mkdir %s: %w", dir, e)
	}
	return nil
}
