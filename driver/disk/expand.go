package disk

import (
	"context"
	"fmt"
	"os"
)

// CompressedClusters counts the clusters of a qcow2 image that are stored
// compressed. QEMU inflates such a cluster on every read, in the thread
// that also runs the VM's devices, so a guest booting from a compressed
// image spends part of its boot waiting for zlib.
func (t Tool) CompressedClusters(ctx context.Context, path string) (int64, error) {
	var c struct {
		Compressed int64 `json:"compressed-clusters"`
	}
	if err := t.runJSON(ctx, &c, "check", "--output=json", "-f", "qcow2", path); err != nil {
		return 0, fmt.Errorf("check image %s: %w", path, err)
	}
	return c.Compressed, nil
}

// ExpandedSize is how many bytes an uncompressed qcow2 copy of the qcow2
// image at path takes (qemu-img measure's "required").
func (t Tool) ExpandedSize(ctx context.Context, path string) (int64, error) {
	var m struct {
		Required int64 `json:"required"`
	}
	if err := t.runJSON(ctx, &m, "measure", "--output=json", "-f", "qcow2", "-O", "qcow2", path); err != nil {
		return 0, fmt.Errorf("measure image %s: %w", path, err)
	}
	return m.Required, nil
}

// Expand writes at dst an uncompressed qcow2 copy of the qcow2 image at
// src: the same disk, which QEMU reads without inflating anything.
func (t Tool) Expand(ctx context.Context, src, dst string) error {
	if _, err := t.run(ctx, "convert", "-q", "-f", "qcow2", "-O", "qcow2", src, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("expand image %s: %w", src, err)
	}
	return nil
}
