package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		src      io.Reader
		old      string // dst's content before, "" for none
		wantErr  bool
		wantData string
	}{
		{name: "new file", src: strings.NewReader("agent"), wantData: "agent"},
		{name: "replaces", src: strings.NewReader("new"), old: "old", wantData: "new"},
		{name: "a failed write leaves the old file", src: failingReader{}, old: "old", wantErr: true, wantData: "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "f")
			if tt.old != "" {
				if err := os.WriteFile(dst, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := Write(dst, tt.src, 0o444)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Write: %v", err)
			}
			if got, _ := os.ReadFile(dst); string(got) != tt.wantData {
				t.Fatalf("%s holds %q, want %q", dst, got, tt.wantData)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("temporary files left: %v", entries)
			}
			if fi, _ := os.Stat(dst); !tt.wantErr && fi.Mode().Perm() != 0o444 {
				t.Fatalf("mode %v, want 0444", fi.Mode().Perm())
			}
		})
	}
}
