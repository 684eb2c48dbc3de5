package artifact

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
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

// mkdirIn makes dest/rel one level at a time, refusing anything on the
// way that is not a real directory (a symlink planted to lead outside).
func mkdirIn(dest, rel string) error {
	if rel == "." {
		return nil
	}
	p := dest
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
			return fmt.Errorf("%w: %s exists and is not a directory", ErrUnsafe, p)
		}
	}
	return nil
}

func writeEntry(zf *zip.File, target string, perm fs.FileMode, budget int64) (int64, error) {
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("replace %s: %w", target, err)
	}
	in, err := zf.Open()
	if err != nil {
		return 0, fmt.Errorf("open %s in zip: %w", zf.Name, err)
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", target, err)
	}
	n, err := io.Copy(out, io.LimitReader(in, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", target, err)
	}
	if n > budget {
		return n, errors.New("artifact is larger than the extraction limit")
	}
	return n, nil
}
