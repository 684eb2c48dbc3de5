// Package confine writes files below a root that a hostile archive (an
// artifact zip, a cache tarball) chose the names of: nothing planted on
// the way, a symlink or a file where a directory should be, is followed
// or written through.
package confine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotDir marks a path on the way down that exists and is not a real
// directory (a symlink planted to lead outside, or a file).
var ErrNotDir = errors.New("exists and is not a directory")

// ErrTooLarge marks a write cut at its byte budget.
var ErrTooLarge = errors.New("larger than the limit")

// MkdirBelow makes root/rel one level at a time (root must exist),
// refusing anything on the way that is not a real directory.
func MkdirBelow(root, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("make %s: %w", p, err)
			}
		case err != nil:
			return fmt.Errorf("stat %s: %w", p, err)
		case !fi.IsDir():
			return fmt.Errorf("%s %w", p, ErrNotDir)
		}
	}
	return nil
}

// WriteNew replaces target with at most budget bytes of r: whatever was
// there is removed first and the file is created anew, so a planted
// symlink or hard link is never written through. It returns the bytes
// written; past budget it fails with ErrTooLarge.
func WriteNew(target string, r io.Reader, perm fs.FileMode, budget int64) (int64, error) {
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("replace %s: %w", target, err)
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", target, err)
	}
	n, err := io.Copy(out, io.LimitReader(r, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", target, err)
	}
	if n > budget {
		return n, fmt.Errorf("%s: %w of %d bytes", target, ErrTooLarge, budget)
	}
	return n, nil
}
