package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A compressed qcow2 expands to an uncompressed one with the same disk
// content; an uncompressed one counts no compressed clusters.
func TestExpandKeepsTheDiskAndDropsTheCompression(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := bytes.Repeat([]byte("solstice "), 1<<17) // about 1 MiB, compressible
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tool := Tool{}
	packed := filepath.Join(dir, "packed.qcow2")
	if _, err := tool.run(ctx(t), "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, packed); err != nil {
		t.Fatal(err)
	}
	n, err := tool.CompressedClusters(ctx(t), packed)
	if err != nil || n == 0 {
		t.Fatalf("compressed clusters of a qemu-img convert -c image: %d, %v; want some", n, err)
	}
	size, err := tool.ExpandedSize(ctx(t), packed)
	if err != nil || size < int64(len(data)) {
		t.Fatalf("expanded size %d, %v; want at least the %d bytes of data", size, err, len(data))
	}
	plain := filepath.Join(dir, "plain.qcow2")
	if err := tool.Expand(ctx(t), packed, plain); err != nil {
		t.Fatal(err)
	}
	if n, err := tool.CompressedClusters(ctx(t), plain); err != nil || n != 0 {
		t.Fatalf("compressed clusters after Expand: %d, %v; want 0", n, err)
	}
	back := filepath.Join(dir, "back.raw")
	if _, err := tool.run(ctx(t), "convert", "-q", "-f", "qcow2", "-O", "raw", plain, back); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(back)
	if !bytes.Equal(got, data) {
		t.Fatalf("the expanded image holds %d bytes that differ from the %d written", len(got), len(data))
	}
	if err := tool.Expand(ctx(t), filepath.Join(dir, "missing.qcow2"), filepath.Join(dir, "x.qcow2")); err == nil {
		t.Fatal("expanded a missing image")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.qcow2")); !os.IsNotExist(err) {
		t.Fatalf("a failed Expand left its output behind: %v", err)
	}
}
