package disk

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// CreateCloneOverlay makes a warm-started task's overlay on its template's
// frozen overlay (qcow2). Unlike CreateOverlay it accepts a base that names
// a backing file: the template is the driver's own, made by CreateOverlay
// on a checked base. The backing chain is not opened (-u): QEMU gets each
// layer as a descriptor, and the size is the template's.
func (t Tool) CreateCloneOverlay(ctx context.Context, template, path string) error {
	info, err := t.Inspect(ctx, template, "qcow2")
	if err != nil {
		return err
	}
	args := []string{"create", "-q", "-f", "qcow2", "-u", "-b", template, "-F", "qcow2", path,
		strconv.FormatInt(info.VirtualSize, 10)}
	if _, err := t.run(ctx, args...); err != nil {
		os.Remove(path)
		return fmt.Errorf("create clone overlay %s on template %s: %w", path, template, err)
	}
	return nil
}
