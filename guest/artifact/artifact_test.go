package artifact

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// tree writes files (name -> content) under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func randomText(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func filesOf(root string, names ...string) []File {
	var fs []File
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			fs = append(fs, File{Name: n})
			continue
		}
		fs = append(fs, File{Name: n, Path: filepath.Join(root, filepath.FromSlash(n))})
	}
	return fs
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	f := newFakeForge(t)
	content := map[string]string{"bin/tool": randomText(t, 3<<20+17), "doc/a/readme.txt": "hello\n", "empty.txt": ""}
	src := tree(t, content)
	c := f.client(t, WithBlockSize(1<<20))
	ctx := context.Background()
	up, err := c.Upload(ctx, Upload{Name: "build", Files: filesOf(src, "bin/tool", "doc/a/readme.txt", "empty.txt", "void/"),
		Level: 6, RetentionDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	a := f.info(t, "build")
	zipBytes, _ := os.ReadFile(a.Final)
	sum := sha256.Sum256(zipBytes)
	if up.ID != a.ID || up.Size != int64(len(zipBytes)) || up.Digest != hex.EncodeToString(sum[:]) {
		t.Errorf("upload result %+v, forge has id %d size %d sha %x", up, a.ID, len(zipBytes), sum)
	}
	if puts, largest := f.BlockStats(); puts < 4 || largest > 1<<20 {
		t.Errorf("%d block PUTs, largest %d bytes: want ≥ 4 blocks of ≤ 1 MiB", puts, largest)
	}
	if a.ExpiresAt == "" {
		t.Error("retention-days did not reach the forge as expires_at")
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
	}
	if want := []string{"bin/tool", "doc/a/readme.txt", "empty.txt", "void/"}; !slices.Equal(names, want) {
		t.Errorf("zip names %q, want %q", names, want)
	}

	list, err := c.List(ctx, "build")
	if err != nil || len(list) != 1 || list[0].Size != a.Size {
		t.Fatalf("List = %+v, %v", list, err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := c.Download(ctx, list[0], dest, t.TempDir(), DefaultLimits); err != nil {
		t.Fatal(err)
	}
	for name, want := range content {
		got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(name)))
		if err != nil || string(got) != want {
			t.Errorf("%s after download: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, "void")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not restored: %v", err)
	}
}

func TestUploadRetriesBlocks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    int
		wantErr bool
	}{
		{"two transient failures", 2, false},
		{"more failures than retries", 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeForge(t)
			f.FailBlocks(tc.fail)
			src := tree(t, map[string]string{"x": randomText(t, 300<<10)})
			_, err := f.client(t, WithBlockSize(100<<10)).Upload(context.Background(), Upload{Name: "x", Files: filesOf(src, "x")})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Upload error %v, want error %v", err, tc.wantErr)
			}
			if a, _ := f.Artifact("x"); !tc.wantErr && a.Final == "" {
				t.Error("artifact not finalized")
			}
		})
	}
}

func TestUploadRefusesBadInput(t *testing.T) {
	f := newFakeForge(t)
	src := tree(t, map[string]string{"a": "a"})
	for _, tc := range []struct {
		name string
		up   Upload
	}{
		{"empty name", Upload{Files: filesOf(src, "a")}},
		{"slash in name", Upload{Name: "a/b", Files: filesOf(src, "a")}},
		{"quote in name", Upload{Name: `a"b`, Files: filesOf(src, "a")}},
		{"dot dot name", Upload{Name: "..", Files: filesOf(src, "a")}},
		{"level 10", Upload{Name: "a", Level: 10, Files: filesOf(src, "a")}},
		{"missing file", Upload{Name: "a", Files: []File{{Name: "gone", Path: filepath.Join(src, "gone")}}}},
		{"directory as file", Upload{Name: "a", Files: []File{{Name: "d", Path: src}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.client(t).Upload(context.Background(), tc.up); err == nil {
				t.Error("Upload succeeded")
			}
			if a, _ := f.Artifact(tc.up.Name); a.Final != "" {
				t.Error("a refused upload was finalized")
			}
		})
	}
}

func TestDownloadChecks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(f *fakeForge)
		want    string
	}{
		{"size differs from listing", func(f *fakeForge) { f.LieAboutSize(1) }, "the server announced"},
		{"signed URL not http", func(f *fakeForge) {
			f.RewriteDownloadURL(func(string) string { return "file:///etc/passwd" })
		}, "not an http(s) URL"},
		{"signature broken", func(f *fakeForge) {
			f.RewriteDownloadURL(func(u string) string { return strings.Replace(u, "sig=", "sig=x", 1) })
		}, "HTTP 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeForge(t)
			src := tree(t, map[string]string{"a": "a"})
			c := f.client(t)
			ctx := context.Background()
			if _, err := c.Upload(ctx, Upload{Name: "a", Files: filesOf(src, "a")}); err != nil {
				t.Fatal(err)
			}
			tc.prepare(f)
			list, err := c.List(ctx, "a")
			if err != nil || len(list) != 1 {
				t.Fatalf("List = %v, %v", list, err)
			}
			dest := filepath.Join(t.TempDir(), "out")
			err = c.Download(ctx, list[0], dest, t.TempDir(), DefaultLimits)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Download error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dest, "a")); err == nil {
				t.Error("a failed download left files")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	f := newFakeForge(t)
	c := f.client(t)
	err := c.Download(context.Background(), Artifact{Name: "nope"}, t.TempDir(), t.TempDir(), DefaultLimits)
	if !IsNotFound(err) {
		t.Fatalf("Download of a missing artifact: %v, want not found", err)
	}
	list, err := c.List(context.Background(), "nope")
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v", list, err)
	}
}

func TestWrongRunRefused(t *testing.T) {
	f := newFakeForge(t)
	other := fakeToken("Actions.Results:22:49")
	c, err := New(f.srv.URL, other, WithHTTPClient(f.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	f.SetToken(other) // a valid token whose run is not the forge's
	_, err = c.List(context.Background(), "")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("List with another run's ids: %v, want HTTP 400", err)
	}
}

// TestUploadMemoryBounded uploads 64 MiB with 1 MiB blocks and checks that
// everything allocated meanwhile, client and in-test server together,
// stays far below the artifact's size.
func TestUploadMemoryBounded(t *testing.T) {
	f := newFakeForge(t)
	src := t.TempDir()
	p := filepath.Join(src, "big")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(out, rand.Reader, 64<<20); err != nil {
		t.Fatal(err)
	}
	out.Close()
	c := f.client(t, WithBlockSize(1<<20))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	up, err := c.Upload(context.Background(), Upload{Name: "big", Level: 0, Files: []File{{Name: "big", Path: p}}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	puts, _ := f.BlockStats()
	t.Logf("uploaded %d bytes in %d blocks, allocated %d bytes", up.Size, puts, alloc)
	if alloc > 24<<20 {
		t.Errorf("allocated %d bytes for a %d byte artifact", alloc, up.Size)
	}
}
