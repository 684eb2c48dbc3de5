package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Expander writes at dst a copy of the cached image at src that QEMU reads
// without inflating anything, and reports false, writing nothing, when src
// has nothing to expand. Cloud images often come as compressed qcow2: a
// guest booting from one waits for zlib in the thread that also runs its
// devices (about a second of a boot under TCG), and every boot pays again.
// The boot copy pays once per image and client.
type Expander func(ctx context.Context, src, dst, format string) (bool, error)

// expandTimeout bounds making a boot copy: qemu-img writes a few GiB in
// well under a minute; one that hangs must not hold the image's tasks.
const expandTimeout = 15 * time.Minute

// bootPath is where the boot copy of the image cached under key lives: a
// hard link to the cached image when there was nothing to expand.
func (c *Cache) bootPath(key string, src Source) string {
	return filepath.Join(c.Dir, key+".boot."+src.Format)
}

// ImagePath is where the image itself is (or would be) cached, as
// opposed to its boot copy; "" when src has no cache key.
func (c *Cache) ImagePath(src Source) string {
	key, err := c.key(src)
	if err != nil {
		return ""
	}
	return c.path(key, src)
}

// ready returns the path a task boots from, when nothing has to be
// fetched or made first.
func (c *Cache) ready(key string, src Source) (string, bool) {
	if boot := c.bootPath(key, src); exists(boot) {
		return boot, true
	}
	final := c.path(key, src)
	if !exists(final) {
		return "", false
	}
	if c.Expand == nil || c.isUnexpanded(key) {
		return final, true
	}
	return "", false
}

// bootCopy makes the boot copy of the image cached at final and returns
// its path; when that fails, the image boots from final (slower, not
// wrong), and the reason is logged.
func (c *Cache) bootCopy(ctx context.Context, src Source, key, final string) string {
	if c.Expand == nil {
		return final
	}
	boot := c.bootPath(key, src)
	ctx, cancel := context.WithTimeout(ctx, expandTimeout)
	defer cancel()
	if err := c.makeBootCopy(ctx, src, final, boot); err != nil {
		c.Log.Warn("tasks boot from the cached image itself: its boot copy failed", "image", src.Label, "path", final, "error", err)
		c.mu.Lock()
		if c.unexpanded == nil {
			c.unexpanded = map[string]bool{}
		}
		c.unexpanded[key] = true
		c.mu.Unlock()
		return final
	}
	return boot
}

func (c *Cache) makeBootCopy(ctx context.Context, src Source, final, boot string) error {
	tmp := boot + ".tmp"
	defer os.Remove(tmp)
	expanded, err := c.Expand(ctx, final, tmp, src.Format)
	switch {
	case err != nil:
		return err
	case !expanded:
		os.Remove(boot) // a stale copy of a removed image
		return os.Link(final, boot)
	}
	if c.Verify != nil {
		if err := c.Verify(ctx, tmp, src.Format); err != nil {
			return fmt.Errorf("the expanded copy fails the image check: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	c.Log.Info("expanded the image for booting", "image", src.Label, "path", boot)
	return os.Rename(tmp, boot)
}

func (c *Cache) isUnexpanded(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unexpanded[key]
}

// removeBootCopy takes the boot copy of the image cached under key out of
// the cache. A half-made one is left alone: it exists only while an
// expansion is writing it, and that expansion removes it if it fails.
func (c *Cache) removeBootCopy(key string, src Source) error {
	if err := os.Remove(c.bootPath(key, src)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// separate reports whether the boot copy at boot is a file of its own,
// not a link to the cached image at final.
func separate(final, boot string) bool {
	a, err1 := os.Stat(final)
	b, err2 := os.Stat(boot)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}
