package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Check is what re-checking a cached image found.
type Check struct {
	Path   string // where the image is (or would be) cached
	Cached bool
	// Want is the checksum the image is cached under: the catalog's
	// sha256, or the source file's own hash when the catalog gives none.
	// Got is the cached file's hash now; both are empty when the image is
	// compressed at its source (the cache holds it decompressed, so the
	// catalog's checksum cannot be compared) or not cached.
	Want, Got string
	// Problem is the Verifier's complaint about a compressed source's
	// cached image.
	Problem string
	// Removed says a corrupt image was taken out of the cache, so the next
	// task fetches it again.
	Removed bool
	// BootCopy is the image's boot copy, when it is a file of its own
	// (checked with the Verifier); BootProblem is the Verifier's complaint
	// about it, in which case it was removed and the next task makes it
	// again.
	BootCopy, BootProblem string
}

// OK reports whether a cached image passed.
func (k Check) OK() bool { return k.Cached && !k.Removed }

// Check re-verifies an image already in the cache without fetching
// anything: an uncompressed image is hashed again and compared with the
// checksum it was cached under; a compressed one goes through the cache's
// Verifier. A cached image that fails is removed (an error removing it is
// returned); a task using it keeps its open file.
func (c *Cache) Check(ctx context.Context, src Source) (Check, error) {
	key, err := c.key(src)
	if err != nil {
		return Check{}, fmt.Errorf("image %q: %w", src.Label, err)
	}
	k := Check{Path: c.path(key, src)}
	if _, err := os.Stat(k.Path); err != nil {
		return k, nil
	}
	k.Cached = true
	bad, err := c.corrupt(ctx, src, key, &k)
	if err != nil {
		return k, err
	}
	if !bad {
		return k, c.checkBootCopy(ctx, src, key, &k)
	}
	if err := c.removeBootCopy(key, src); err != nil {
		return k, fmt.Errorf("image %q: remove the boot copy of the corrupt %s: %w", src.Label, k.Path, err)
	}
	if err := os.Remove(k.Path); err != nil {
		return k, fmt.Errorf("image %q: remove the corrupt %s: %w", src.Label, k.Path, err)
	}
	k.Removed = true
	return k, nil
}

// checkBootCopy runs the Verifier on the image's boot copy, when that is a
// file of its own, and removes a corrupt one.
func (c *Cache) checkBootCopy(ctx context.Context, src Source, key string, k *Check) error {
	boot := c.bootPath(key, src)
	if c.Verify == nil || !separate(k.Path, boot) {
		return nil
	}
	k.BootCopy = boot
	err := c.Verify(ctx, boot, src.Format)
	if err == nil {
		return nil
	}
	k.BootProblem = err.Error()
	if err := c.removeBootCopy(key, src); err != nil {
		return fmt.Errorf("image %q: remove the corrupt boot copy %s: %w", src.Label, boot, err)
	}
	return nil
}

// corrupt checks the cached file k.Path, filling in k's checksums.
func (c *Cache) corrupt(ctx context.Context, src Source, key string, k *Check) (bool, error) {
	if src.Compression != "" && src.Compression != "none" {
		if c.Verify == nil {
			return false, nil
		}
		if err := c.Verify(ctx, k.Path, src.Format); err != nil {
			k.Problem = err.Error()
			return true, nil
		}
		return false, nil
	}
	got, err := HashFile(ctx, k.Path)
	if err != nil {
		return false, fmt.Errorf("image %q: hash %s: %w", src.Label, k.Path, err)
	}
	k.Want, k.Got = key, got
	return got != key, nil
}

// HashFile is the hex sha256 of the file at path; it stops when ctx ends,
// since a big image takes a while to read.
func HashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
