package artifact

import (
	"archive/zip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/solstice-ci/solstice/guest/confine"
)

// Extract unpacks the zip in f into dest. Every name must stay inside
// dest; symlinks, devices and other special entries are refused, parent
// directories that are symlinks are refused, existing files are replaced
// (never written through), and lim caps entries and bytes written, counted
// on the data, not on what the headers claim.
func Extract(f *os.File, dest string, lim Limits) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat zip: %w", err)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%w: %v", ErrUnsafe, err)
	}
	if err != nil {
		return fmt.Errorf("read zip: %w", err)
	}
	if len(zr.File) > lim.MaxFiles {
		return fmt.Errorf("zip has %d entries, more than the limit of %d", len(zr.File), lim.MaxFiles)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", dest, err)
	}
	budget := lim.MaxBytes
	for _, zf := range zr.File {
		n, err := extractOne(zf, dest, budget)
		if err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

// entryPath checks a zip name and returns it as a local relative path.
func entryPath(name string) (string, error) {
	clean := path.Clean(name)
	switch {
	case strings.ContainsAny(name, "\\\x00"), strings.HasPrefix(name, "/"),
		clean == "." || clean == "..", strings.HasPrefix(clean, "../"),
		!filepath.IsLocal(filepath.FromSlash(clean)):
		return "", fmt.Errorf("%w: %q", ErrUnsafe, name)
	}
	return filepath.FromSlash(clean), nil
}

func extractOne(zf *zip.File, dest string, budget int64) (int64, error) {
	rel, err := entryPath(zf.Name)
	if err != nil {
		return 0, err
	}
	mode := zf.Mode()
	isDir := strings.HasSuffix(zf.Name, "/") || mode.IsDir()
	if !isDir && !mode.IsRegular() {
		return 0, fmt.Errorf("%w: %q is a %v", ErrUnsafe, zf.Name, mode.Type())
	}
	if isDir {
		return 0, mkdirIn(dest, rel)
	}
	if err := mkdirIn(dest, filepath.Dir(rel)); err != nil {
		return 0, err
	}
	return writeEntry(zf, filepath.Join(dest, rel), mode.Perm()|0o600, budget)
}

// mkdirIn makes dest/rel, refusing anything planted on the way.
func mkdirIn(dest, rel string) error {
	err := confine.MkdirBelow(dest, rel)
	if errors.Is(err, confine.ErrNotDir) {
		return fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	return err
}

func writeEntry(zf *zip.File, target string, perm fs.FileMode, budget int64) (int64, error) {
	in, err := zf.Open()
	if err != nil {
		return 0, fmt.Errorf("open %s in zip: %w", zf.Name, err)
	}
	defer in.Close()
	n, err := confine.WriteNew(target, in, perm, budget)
	if errors.Is(err, confine.ErrTooLarge) {
		return n, errors.New("artifact is larger than the extraction limit")
	}
	return n, err
}
