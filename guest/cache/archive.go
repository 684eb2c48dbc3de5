package cache

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/solstice-ci/solstice/guest/confine"
)

// Compression is the method in the entry version: archives are tar+gzip.
const Compression = "gzip"

// File is one archive member: Name relative to the workspace (it may
// start with ../ for paths outside, as actions/cache's tar does), Path on
// disk.
type File struct {
	Name string
	Path string
}

// WriteArchive writes files as a gzip'd tar to w.
func WriteArchive(w io.Writer, files []File) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := addFile(tw, f); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish cache archive: %w", err)
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, f File) error {
	in, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Path, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.Path)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", f.Path, err)
	}
	if _, err := io.CopyN(tw, in, fi.Size()); err != nil {
		return fmt.Errorf("archive %s: %w", f.Path, err)
	}
	return nil
}

// Limits bound a restore.
type Limits struct {
	MaxBytes int64
	MaxFiles int
}

// ErrOutside marks an archive member that would land outside the
// declared cache paths.
var ErrOutside = errors.New("cache archive member outside the cache paths")

// Extract restores the archive in r below workspace; every member must
// land at or below one of roots (the step's resolved path inputs), only
// regular files and directories are accepted, no existing symlink is
// followed, and lim caps files and bytes.
func Extract(r io.Reader, workspace string, roots []string, lim Limits) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read cache archive: %w", err)
	}
	tr := tar.NewReader(gz)
	budget, files := lim.MaxBytes, 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read cache archive: %w", err)
		}
		if files++; files > lim.MaxFiles {
			return fmt.Errorf("cache archive has more than %d members", lim.MaxFiles)
		}
		n, err := extractMember(tr, hdr, workspace, roots, budget)
		if err != nil {
			return err
		}
		budget -= n
	}
}

func extractMember(tr *tar.Reader, hdr *tar.Header, workspace string, roots []string, budget int64) (int64, error) {
	if strings.ContainsAny(hdr.Name, "\\\x00") || path.IsAbs(hdr.Name) {
		return 0, fmt.Errorf("%w: %q", ErrOutside, hdr.Name)
	}
	target := filepath.Join(workspace, filepath.FromSlash(hdr.Name))
	root, ok := under(target, roots)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrOutside, hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return 0, mkdirBelow(root, target)
	case tar.TypeReg:
		if err := mkdirBelow(root, filepath.Dir(target)); err != nil {
			return 0, err
		}
		return writeMember(tr, target, fs.FileMode(hdr.Mode).Perm()|0o600, budget)
	default:
		return 0, fmt.Errorf("%w: %q is not a file or directory", ErrOutside, hdr.Name)
	}
}

// under returns the root that holds target.
func under(target string, roots []string) (string, bool) {
	for _, r := range roots {
		rel, err := filepath.Rel(r, target)
		if err == nil && filepath.IsLocal(rel) {
			return r, true
		}
	}
	return "", false
}

// mkdirBelow makes dir (at or below root), refusing symlinks or files on
// the way from root down; root itself is made as needed.
func mkdirBelow(root, dir string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", root, err)
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return err
	}
	err = confine.MkdirBelow(root, rel)
	if errors.Is(err, confine.ErrNotDir) {
		return fmt.Errorf("%w: %w", ErrOutside, err)
	}
	return err
}

func writeMember(r io.Reader, target string, perm fs.FileMode, budget int64) (int64, error) {
	n, err := confine.WriteNew(target, r, perm, budget)
	if errors.Is(err, confine.ErrTooLarge) {
		return n, errors.New("cache archive is larger than the restore limit")
	}
	return n, err
}
