package artifact

import (
	"archive/zip"
	"compress/flate"
	"fmt"
	"io"
	"os"
	"strings"
)

// File is one entry of an artifact's zip.
type File struct {
	// Name is the slash-separated path in the zip, relative to the
	// upload's root; a directory's name ends in "/" and has no Path.
	Name string
	// Path is the file on disk.
	Path string
}

// writeZip writes the files as a zip into w: deflated at level (stored at
// 0), with their modes and modification times, as upload-artifact does.
func writeZip(w io.Writer, files []File, level int) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, level)
	})
	for _, f := range files {
		if err := addFile(zw, f, level); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish zip: %w", err)
	}
	return nil
}

func addFile(zw *zip.Writer, f File, level int) error {
	if strings.HasSuffix(f.Name, "/") {
		_, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			return fmt.Errorf("add directory %s: %w", f.Name, err)
		}
		return nil
	}
	in, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Path, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.Path)
	}
	hdr, err := zip.FileInfoHeader(fi)
	if err != nil {
		return fmt.Errorf("zip header for %s: %w", f.Path, err)
	}
	hdr.Name, hdr.Method = f.Name, zip.Deflate
	if level == 0 {
		hdr.Method = zip.Store
	}
	out, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("add %s: %w", f.Name, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("zip %s: %w", f.Path, err)
	}
	return nil
}
