package image

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// decompress writes the decompressed content of src to dst.
func decompress(src, dst, compression string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r, closeR, err := reader(bufio.NewReaderSize(in, 1<<20), compression)
	if err != nil {
		return fmt.Errorf("read %s as %s: %w", src, compression, err)
	}
	defer closeR()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("decompress (%s): %w", compression, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func reader(r io.Reader, compression string) (io.Reader, func(), error) {
	switch compression {
	case "", "none":
		return r, func() {}, nil
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case "xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", compression)
}
