// Package image keeps the catalog's base images on a Nomad client: it fetches
// each image once (file or http(s), resuming interrupted downloads), checks
// its sha256, decompresses it and stores it read-only under its content
// hash, next to a boot copy with no compressed clusters (see Expander). A
// failed or corrupt fetch never leaves an entry that a later task could
// boot from.
package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Source is one catalog image as the client's plugin config gives it.
type Source struct {
	Label       string
	URL         string // https://…, http://…, file:///… or an absolute path
	SHA256      string // of the bytes at URL; required for http(s)
	Format      string // qcow2 or raw, after decompression
	Compression string // none, zstd, xz or gzip
	// Progress, when set, hears how a download of this image comes along,
	// whether this call started the download or joined one under way.
	Progress func(Progress)
}

// Verifier checks a decompressed image before it enters the cache, so a
// truncated or corrupt image is refused at fetch time, not at boot.
type Verifier func(ctx context.Context, path, format string) error

// Cache is the on-disk image store of one client.
type Cache struct {
	Dir string
	Log hclog.Logger
	// HTTP downloads images; nil means a safehttp client (timeouts, no
	// metadata addresses, no https-to-http redirects).
	HTTP   *http.Client
	Verify Verifier
	// Expand, when set, makes each cached image's boot copy; without it
	// tasks boot from the cached image itself.
	Expand Expander
	// MaxBytes caps an image, as downloaded and again once decompressed
	// (the plugin's max_image_size); 0 means no cap.
	MaxBytes int64

	mu       sync.Mutex
	inflight map[string]*fetch // by cache key: one fetch per image at a time
	// unexpanded are the images whose boot copy failed: they boot from the
	// cached image until the plugin restarts, rather than retrying a slow
	// failure at every task start.
	unexpanded map[string]bool
}

type fetch struct {
	watchers
	done chan struct{}
	path string
	err  error
}

// Ensure returns the path of the image's read-only base, fetching it (and
// making its boot copy) first if needed. Concurrent callers for the same
// image share one fetch.
func (c *Cache) Ensure(ctx context.Context, src Source) (string, error) {
	key, err := c.key(src)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", src.Label, err)
	}
	if path, ok := c.ready(key, src); ok {
		return path, nil
	}
	f, leader := c.join(key)
	defer f.add(src.Progress)()
	if leader {
		// The fetch outlives the task that asked first: another task may be
		// waiting for the same image, and a resumed download wastes nothing.
		go func() {
			f.path, f.err = c.fetch(context.WithoutCancel(ctx), src, key, f.report)
			c.leave(key, f)
		}()
	}
	select {
	case <-f.done:
		return f.path, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("image %q: %w", src.Label, ctx.Err())
	}
}

func (c *Cache) join(key string) (*fetch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == nil {
		c.inflight = map[string]*fetch{}
	}
	if f, ok := c.inflight[key]; ok {
		return f, false
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[key] = f
	return f, true
}

func (c *Cache) leave(key string, f *fetch) {
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(f.done)
}

// key names an image in the cache by the sha256 of its source bytes. A
// local file given without a checksum is hashed here: that costs one read
// per task start, the price of not trusting a path whose content can change.
func (c *Cache) key(src Source) (string, error) {
	if src.SHA256 != "" {
		return strings.ToLower(src.SHA256), nil
	}
	path, ok := localPath(src.URL)
	if !ok {
		return "", errors.New("an http(s) source needs a sha256")
	}
	sum, err := HashFile(context.Background(), path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return sum, nil
}

// fetch brings the image into the cache unless it is there already, then
// makes its boot copy.
func (c *Cache) fetch(ctx context.Context, src Source, key string, progress func(Progress)) (string, error) {
	final := c.path(key, src)
	if !exists(final) {
		if err := c.cacheImage(ctx, src, key, final, progress); err != nil {
			return "", err
		}
	}
	return c.bootCopy(ctx, src, key, final), nil
}

// cacheImage downloads, checks and installs the image at final.
func (c *Cache) cacheImage(ctx context.Context, src Source, key, final string, progress func(Progress)) error {
	log := c.Log.With("image", src.Label, "source", src.URL)
	log.Info("fetching image")
	if err := os.MkdirAll(filepath.Join(c.Dir, "partial"), 0o755); err != nil {
		return fmt.Errorf("image %q: create cache dir: %w", src.Label, err)
	}
	raw, temporary, err := c.download(ctx, src, key, progress)
	if err != nil {
		return fmt.Errorf("image %q: %w", src.Label, err)
	}
	if temporary {
		// After a checksum match the download is no longer needed, and a
		// corrupt one must not be resumed.
		defer os.Remove(raw)
	}
	if err := c.install(ctx, src, raw, final); err != nil {
		return fmt.Errorf("image %q: %w", src.Label, err)
	}
	log.Info("image cached", "path", final)
	return nil
}

// install decompresses raw into a temporary file, verifies it and renames it
// into place read-only.
func (c *Cache) install(ctx context.Context, src Source, raw, final string) error {
	tmp := final + ".tmp"
	defer os.Remove(tmp)
	if err := decompress(raw, tmp, src.Compression, c.MaxBytes); err != nil {
		return err
	}
	if c.Verify != nil {
		if err := c.Verify(ctx, tmp, src.Format); err != nil {
			return fmt.Errorf("corrupt image: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func localPath(u string) (string, bool) {
	switch {
	case strings.HasPrefix(u, "file://"):
		return strings.TrimPrefix(u, "file://"), true
	case strings.HasPrefix(u, "/"):
		return u, true
	}
	return "", false
}

// path is where the image cached under key lives.
func (c *Cache) path(key string, src Source) string {
	return filepath.Join(c.Dir, key+"."+src.Format)
}

// Cached returns the path a task boots an image from when the image is
// already in the cache (its boot copy, when that is made), without
// fetching anything.
func (c *Cache) Cached(src Source) (string, bool) {
	key, err := c.key(src)
	if err != nil {
		return "", false
	}
	if boot := c.bootPath(key, src); exists(boot) {
		return boot, true
	}
	final := c.path(key, src)
	return final, exists(final)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
