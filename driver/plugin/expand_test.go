package plugin

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/disk"
)

// The plugin's expander, with the real qemu-img: a compressed qcow2 gets
// an uncompressed copy; an uncompressed one or a raw image has nothing to
// expand; a copy larger than max_image_size is refused, saying so.
func TestImageExpander(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, bytes.Repeat([]byte("solstice "), 1<<17), 0o644); err != nil {
		t.Fatal(err)
	}
	convert := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("qemu-img", append(append([]string{"convert", "-q", "-f", "raw", "-O", "qcow2"}, args...), raw, out)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, b)
		}
		return out
	}
	packed, plain := convert("packed.qcow2", "-c"), convert("plain.qcow2")
	for _, tc := range []struct {
		name, src, format string
		max               int64
		want              bool
		wantErr           string
	}{
		{name: "compressed", src: packed, format: "qcow2", want: true},
		{name: "uncompressed", src: plain, format: "qcow2"},
		{name: "raw", src: raw, format: "raw"},
		{name: "over max_image_size", src: packed, format: "qcow2", max: 64 << 10, wantErr: "more than max_image_size (65536)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dst := filepath.Join(t.TempDir(), "boot.qcow2")
			got, err := imageExpander(disk.Tool{}, tc.max)(ctx, tc.src, dst, tc.format)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("expanded = %v, %v; want %v", got, err, tc.want)
			}
			if !got {
				if _, err := os.Stat(dst); !os.IsNotExist(err) {
					t.Fatalf("wrote %s with nothing to expand", dst)
				}
				return
			}
			if n, err := (disk.Tool{}).CompressedClusters(ctx, dst); err != nil || n != 0 {
				t.Fatalf("the boot copy has %d compressed clusters (%v)", n, err)
			}
		})
	}
}
