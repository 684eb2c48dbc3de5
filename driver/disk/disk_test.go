package disk

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"20GiB", 20 << 30, ""},
		{"512MiB", 512 << 20, ""},
		{"10G", 10 << 30, ""},
		{"1.5TiB", 3 << 39, ""},
		{"4096", 4096, ""},
		{" 2 GiB ", 2 << 30, ""},
		{"", 0, "empty"},
		{"12 parsecs", 0, `unknown unit "parsecs"`},
		{"-1GiB", 0, "not a positive number"},
		{"GiB", 0, "not a positive number"},
		{"99999999999TiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func makeBase(t *testing.T, size string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "base.qcow2")
	if _, err := (Tool{}).run(ctx(t), "create", "-q", "-f", "qcow2", path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileSum(t *testing.T, path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestCreateOverlay(t *testing.T) {
	base := makeBase(t, "1G")
	before := fileSum(t, base)
	tests := []struct {
		name     string
		size     int64
		wantSize int64
	}{
		{"keeps the base size", 0, 1 << 30},
		{"grows to disk_size", 20 << 30, 20 << 30},
		{"never shrinks", 512 << 20, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "overlay.qcow2")
			if err := (Tool{}).CreateOverlay(ctx(t), base, "qcow2", path, tt.size); err != nil {
				t.Fatal(err)
			}
			info, err := (Tool{}).Inspect(ctx(t), path, "qcow2")
			if err != nil {
				t.Fatal(err)
			}
			if info.VirtualSize != tt.wantSize || info.BackingFile != base {
				t.Fatalf("overlay info = %+v, want size %d backed by %s", info, tt.wantSize, base)
			}
		})
	}
	if fileSum(t, base) != before {
		t.Fatal("creating overlays changed the base image")
	}
}

func TestCreateOverlayMissingBase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overlay.qcow2")
	err := (Tool{}).CreateOverlay(ctx(t), "/nonexistent/base.qcow2", "qcow2", path, 1<<30)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/base.qcow2") {
		t.Fatalf("CreateOverlay on a missing base: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a failed overlay left a file behind")
	}
}

func TestCheckRejectsCorruptQcow2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.qcow2")
	if err := os.WriteFile(path, []byte("QFI\xfbthis is not a qcow2 image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (Tool{}).Inspect(ctx(t), path, "qcow2"); err == nil {
		t.Fatal("Inspect accepted a corrupt qcow2")
	}
}

// TestImagesNamingHostFilesAreRefused: a base image whose header names a
// backing file or an external data file would have QEMU read that host
// file into the guest. Inspect shows it without opening the file, and both
// the verifier (SelfContained) and CreateOverlay refuse it.
func TestImagesNamingHostFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "host-secret")
	if err := os.WriteFile(secret, []byte("not for guests"), 0o600); err != nil {
		t.Fatal(err)
	}
	backed := filepath.Join(dir, "backed.qcow2")
	external := filepath.Join(dir, "external.qcow2")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", backed, "1M"},
		{"create", "-q", "-f", "qcow2", "-o", "data_file=" + filepath.Join(dir, "data.raw"), external, "1M"},
	} {
		if _, err := (Tool{}).run(ctx(t), args...); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		backed:   "the image is not self-contained: it names a backing file (" + secret + "), which QEMU would read from this host",
		external: "the image is not self-contained: it names an external data file (" + filepath.Join(dir, "data.raw") + ")",
	} {
		info, err := (Tool{}).Inspect(ctx(t), path, "qcow2")
		if err != nil {
			t.Fatal(err)
		}
		if err := info.SelfContained(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: SelfContained() = %v, want %q", filepath.Base(path), err, want)
		}
		overlay := filepath.Join(dir, "overlay.qcow2")
		err = (Tool{}).CreateOverlay(ctx(t), path, "qcow2", overlay, 0)
		if !errors.Is(err, ErrNotSelfContained) {
			t.Errorf("%s: CreateOverlay = %v, want %v", filepath.Base(path), err, ErrNotSelfContained)
		}
		if _, err := os.Stat(overlay); !os.IsNotExist(err) {
			t.Errorf("%s: a refused base left an overlay", filepath.Base(path))
		}
	}
	info, err := (Tool{}).Inspect(ctx(t), makeBase(t, "1M"), "qcow2")
	if err != nil || info.SelfContained() != nil {
		t.Fatalf("a plain qcow2: %v, %v", err, info.SelfContained())
	}
}

func TestCreateCloneOverlayOnATemplate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	tool := Tool{}
	tpl := filepath.Join(dir, "template.qcow2")
	if err := tool.CreateOverlay(ctx, base, "qcow2", tpl, 128<<20); err != nil {
		t.Fatal(err)
	}
	// CreateOverlay refuses the template (it names a backing file);
	// CreateCloneOverlay takes it and keeps its size.
	if err := tool.CreateOverlay(ctx, tpl, "qcow2", filepath.Join(dir, "refused.qcow2"), 0); err == nil {
		t.Fatal("CreateOverlay accepted a base with a backing file")
	}
	clone := filepath.Join(dir, "clone.qcow2")
	if err := tool.CreateCloneOverlay(ctx, tpl, clone); err != nil {
		t.Fatal(err)
	}
	info, err := tool.Inspect(ctx, clone, "qcow2")
	if err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != 128<<20 {
		t.Fatalf("clone overlay is %d bytes, want the template's %d", info.VirtualSize, 128<<20)
	}
}
