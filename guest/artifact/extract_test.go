package artifact

import (
	"archive/zip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name string
	mode fs.FileMode
	data string
}

func zipFile(t *testing.T, entries []entry) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.zip")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExtractRefusesHostileZips(t *testing.T) {
	small := Limits{MaxZip: 1 << 20, MaxBytes: 1000, MaxFiles: 3}
	for _, tc := range []struct {
		name    string
		entries []entry
		lim     Limits
		unsafe  bool // wants ErrUnsafe, else any error
	}{
		{"parent escape", []entry{{name: "../evil", data: "x"}}, DefaultLimits, true},
		{"nested escape", []entry{{name: "a/../../evil", data: "x"}}, DefaultLimits, true},
		{"absolute", []entry{{name: "/tmp/evil", data: "x"}}, DefaultLimits, true},
		{"backslash", []entry{{name: `a\..\..\evil`, data: "x"}}, DefaultLimits, true},
		{"dot", []entry{{name: "./", data: ""}}, DefaultLimits, true},
		{"symlink", []entry{{name: "link", mode: fs.ModeSymlink | 0o777, data: "/etc"}}, DefaultLimits, true},
		{"device", []entry{{name: "dev", mode: fs.ModeDevice | 0o600, data: ""}}, DefaultLimits, true},
		{"file then dir through it", []entry{{name: "a", data: "x"}, {name: "a/b", data: "y"}}, DefaultLimits, true},
		{"too many entries", []entry{{name: "1"}, {name: "2"}, {name: "3"}, {name: "4"}}, small, false},
		{"bomb", []entry{{name: "big", data: strings.Repeat("0", 5000)}}, small, false},
		{"bomb across files", []entry{{name: "a", data: strings.Repeat("0", 600)}, {name: "b", data: strings.Repeat("0", 600)}}, small, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outer := t.TempDir()
			dest := filepath.Join(outer, "dest")
			err := Extract(zipFile(t, tc.entries), dest, tc.lim)
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			if tc.unsafe && !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %v is not ErrUnsafe", err)
			}
			if _, err := os.Stat(filepath.Join(outer, "evil")); err == nil {
				t.Error("a file escaped the destination")
			}
		})
	}
}

func TestExtractDoesNotFollowPlantedSymlinks(t *testing.T) {
	outside := t.TempDir()
	dest := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dest, "file")); err != nil {
		t.Fatal(err)
	}
	err := Extract(zipFile(t, []entry{{name: "dir/x", data: "x"}}), dest, DefaultLimits)
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("through a symlinked directory: %v, want ErrUnsafe", err)
	}
	// A symlink in the file's place is replaced, not written through.
	if err := Extract(zipFile(t, []entry{{name: "file", data: "new"}}), dest, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "target")); err == nil {
		t.Error("extraction wrote through a symlink")
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "file")); string(got) != "new" {
		t.Errorf("file = %q, want new", got)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("outside has %d entries", len(entries))
	}
}

func TestExtractOverwritesAndKeepsModes(t *testing.T) {
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "run.sh"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Extract(zipFile(t, []entry{{name: "run.sh", mode: 0o755, data: "#!/bin/sh\n"}, {name: "d/"}}), dest, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dest, "run.sh"))
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh mode %v, %v: want executable", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "run.sh")); string(got) != "#!/bin/sh\n" {
		t.Errorf("run.sh = %q", got)
	}
}
