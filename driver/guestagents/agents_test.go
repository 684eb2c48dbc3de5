package guestagents

import (
	"archive/tar"
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"
)

func archiveOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, name := range slices.Sorted(maps.Keys(files)) { // as make build: in a fixed order
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUnpack(t *testing.T) {
	arch := archiveOf(t, map[string]string{
		"solstice-guest-linux-amd64":   "linux agent",
		"solstice-guest-illumos-amd64": "illumos agent",
	})
	tests := []struct {
		os, want, wantErr string
	}{
		{os: "linux", want: "linux agent"},
		{os: "illumos", want: "illumos agent"},
		{os: "freebsd", wantErr: "solstice-guest-freebsd-amd64 is not in the archive"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.os, func(t *testing.T) {
			p, err := unpack(arch, dir, tt.os)
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != tt.want {
				t.Fatalf("%s holds %q (%v), want %q", p, got, err, tt.want)
			}
			if st, _ := os.Stat(p); st.Mode().Perm() != 0o755 {
				t.Errorf("mode %v, want executable", st.Mode())
			}
			again, err := unpack(arch, dir, tt.os)
			if err != nil || again != p {
				t.Errorf("second unpack = %q, %v; want the same file", again, err)
			}
		})
	}
	// A different archive (a driver upgrade) gets its own directory.
	other := archiveOf(t, map[string]string{"solstice-guest-linux-amd64": "newer"})
	p, err := unpack(other, dir, "linux")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "newer" {
		t.Errorf("upgraded agent holds %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d version directories, want 2", len(entries))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".agent-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestNotEmbedded(t *testing.T) {
	if _, err := unpack(nil, t.TempDir(), "linux"); !errors.Is(err, ErrNotEmbedded) {
		t.Fatalf("err = %v, want ErrNotEmbedded", err)
	}
}

// Tasks starting together on a fresh cache each need an agent; the
// archive is decoded for one at a time (the decoder's dictionary is the
// plugin's largest allocation), only as far as needed, and every agent
// decoded on the way is kept.
func TestUnpackOncePerDirectory(t *testing.T) {
	arch := archiveOf(t, map[string]string{
		"solstice-guest-linux-amd64":   "linux agent",
		"solstice-guest-illumos-amd64": "illumos agent",
	})
	tests := []struct {
		name string
		oses []string // asked for at once
	}{
		{"one OS, many tasks", []string{"linux", "linux", "linux", "linux"}},
		{"two OSes at once", []string{"linux", "illumos", "linux", "illumos"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := make([]string, len(tt.oses))
			errs := make([]error, len(tt.oses))
			var wg sync.WaitGroup
			for i, o := range tt.oses {
				wg.Add(1)
				go func() { defer wg.Done(); paths[i], errs[i] = unpack(arch, dir, o) }()
			}
			wg.Wait()
			for i, o := range tt.oses {
				if got, err := os.ReadFile(paths[i]); errs[i] != nil || err != nil || string(got) != o+" agent" {
					t.Errorf("%s: %q (%v, %v)", o, got, errs[i], err)
				}
			}
			// illumos comes before linux in the archive: decoding linux
			// wrote it too.
			all, _ := filepath.Glob(filepath.Join(dir, "*", "solstice-guest-*"))
			if len(all) != 2 {
				t.Errorf("unpacked %v, want both agents", all)
			}
			if leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".agent-*")); len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}
