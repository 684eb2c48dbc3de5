package confine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMkdirBelow(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, root, outside string)
		rel     string
		wantErr error
	}{
		{name: "new levels", rel: "a/b/c"},
		{name: "existing directory", rel: "a/b", plant: func(t *testing.T, root, _ string) {
			must(t, os.MkdirAll(filepath.Join(root, "a"), 0o755))
		}},
		{name: "symlink on the way", rel: "a/b", wantErr: ErrNotDir, plant: func(t *testing.T, root, outside string) {
			must(t, os.Symlink(outside, filepath.Join(root, "a")))
		}},
		{name: "file on the way", rel: "a/b", wantErr: ErrNotDir, plant: func(t *testing.T, root, _ string) {
			must(t, os.WriteFile(filepath.Join(root, "a"), nil, 0o644))
		}},
		{name: "root itself", rel: "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			if tt.plant != nil {
				tt.plant(t, root, outside)
			}
			err := MkdirBelow(root, filepath.FromSlash(tt.rel))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("MkdirBelow: %v, want %v", err, tt.wantErr)
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Fatalf("something was made outside the root: %v", left)
			}
			if err == nil {
				if fi, err := os.Lstat(filepath.Join(root, tt.rel)); err != nil || !fi.IsDir() {
					t.Fatalf("%s is not a directory: %v", tt.rel, err)
				}
			}
		})
	}
}

func TestWriteNew(t *testing.T) {
	t.Run("does not write through a planted symlink", func(t *testing.T) {
		root, outside := t.TempDir(), t.TempDir()
		victim := filepath.Join(outside, "victim")
		must(t, os.WriteFile(victim, []byte("keep"), 0o644))
		target := filepath.Join(root, "f")
		must(t, os.Symlink(victim, target))
		n, err := WriteNew(target, strings.NewReader("new"), 0o644, 10)
		if err != nil || n != 3 {
			t.Fatalf("WriteNew: %d, %v", n, err)
		}
		if got, _ := os.ReadFile(victim); string(got) != "keep" {
			t.Fatalf("the symlink's target was written: %q", got)
		}
		if fi, _ := os.Lstat(target); fi.Mode()&os.ModeSymlink != 0 {
			t.Fatal("the target is still a symlink")
		}
	})
	t.Run("stops past the budget", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "f")
		n, err := WriteNew(target, strings.NewReader(strings.Repeat("x", 100)), 0o644, 10)
		if !errors.Is(err, ErrTooLarge) || n != 11 {
			t.Fatalf("WriteNew: %d, %v; want 11 bytes read and ErrTooLarge", n, err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
