package juicetest

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/juicedata/juicefs/pkg/meta"
)

// Symlink creates the symlink link (absolute in the volume) pointing at
// target, creating link's parent directories.
func (w *Writer) Symlink(target, link string) error {
	ctx := meta.Background()
	if dir := path.Dir(link); dir != "/" {
		if e := w.fs.MkdirAll(ctx, dir, 0o755, 0); e != 0 && !errors.Is(e, os.ErrExist) {
			return fmt.Errorf("juicetest: mkdir %s: %w", dir, e)
		}
	}
	if e := w.fs.Symlink(ctx, target, link); e != 0 {
		return fmt.Errorf("juicetest: symlink %s -> %s: %w", link, target, e)
	}
	return nil
}
