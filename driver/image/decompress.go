package image

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/solstice-ci/solstice/driver/safehttp"
)

// decompress writes the decompressed content of src to dst, failing once
// it grows past max bytes (when max > 0): a few MB of zstd can expand to
// fill the cache's disk.
func decompress(src, dst, compression string, max int64) error {
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
	if _, err := io.Copy(out, safehttp.LimitReader(r, max)); err != nil {
		out.Close()
		if errors.Is(err, safehttp.ErrTooLarge) {
			return fmt.Errorf("decompress (%s): %w: the image is larger than max_image_size", compression, err)
		}
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
