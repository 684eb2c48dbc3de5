package cache

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/guest/results"
	shimcache "github.com/solstice-ci/solstice/shim/cache"
)

// service runs the shim's real cache service; it returns a client maker
// for a repository.
func service(t *testing.T) func(repo string) *Client {
	m, err := shimcache.NewMinter(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := shimcache.NewStore(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(shimcache.NewServer(st, m, "", hclog.NewNullLogger()))
	t.Cleanup(srv.Close)
	// The server builds blob URLs from its base, known once it listens.
	srv.Config.Handler = shimcache.NewServer(st, m, srv.URL, hclog.NewNullLogger())
	return func(repo string) *Client {
		tok, err := m.Mint(repo, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tr := results.NewTransport()
		tr.Retries, tr.Backoff, tr.BlockSize = 2, time.Millisecond, 1000
		c, err := New(srv.URL, tok, tr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func write(t *testing.T, root string, files map[string]string) {
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func archive(t *testing.T, ws string, names ...string) *bytes.Buffer {
	var files []File
	for _, n := range names {
		files = append(files, File{Name: n, Path: filepath.Join(ws, filepath.FromSlash(n))})
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, files); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestSaveLookupRestore(t *testing.T) {
	client := service(t)
	ctx := context.Background()
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	write(t, base, map[string]string{"ws/deps/a": strings.Repeat("a", 5000), "ws/deps/sub/b": "b", "home/.cache/c": "c"})
	version := Version([]string{"deps", "~/.cache"}, Compression)
	c := client("o/r")
	size, err := c.Save(ctx, "deps-v1-abc", version, archive(t, ws, "deps/a", "deps/sub/b", "../home/.cache/c"))
	if err != nil || size == 0 {
		t.Fatalf("Save = %d, %v", size, err)
	}
	if _, err := c.Save(ctx, "deps-v1-abc", version, archive(t, ws, "deps/a")); !errors.Is(err, ErrExists) {
		t.Errorf("second save: %v, want ErrExists", err)
	}
	for _, tc := range []struct {
		repo, key string
		restore   []string
		version   string
		want      string
	}{
		{"o/r", "deps-v1-abc", nil, version, "deps-v1-abc"},
		{"o/r", "deps-v1-zzz", []string{"deps-v1-"}, version, "deps-v1-abc"},
		{"o/r", "deps-v1-abc", nil, Version([]string{"other"}, Compression), ""},
		{"x/y", "deps-v1-abc", []string{"deps-"}, version, ""},
	} {
		h, ok, err := client(tc.repo).Lookup(ctx, tc.key, tc.restore, tc.version)
		if err != nil || ok != (tc.want != "") || h.Key != tc.want {
			t.Errorf("Lookup %s %s: %+v %v %v, want %q", tc.repo, tc.key, h, ok, err, tc.want)
		}
	}

	h, _, _ := c.Lookup(ctx, "deps-v1-abc", nil, version)
	f, err := c.Download(ctx, h, t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(0, 0)
	base2 := t.TempDir()
	ws2 := filepath.Join(base2, "ws")
	roots := []string{filepath.Join(ws2, "deps"), filepath.Join(base2, "home/.cache")}
	if err := Extract(f, ws2, roots, Limits{MaxBytes: 1 << 20, MaxFiles: 10}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ws/deps/a": strings.Repeat("a", 5000), "ws/deps/sub/b": "b", "home/.cache/c": "c"} {
		got, err := os.ReadFile(filepath.Join(base2, name))
		if err != nil || string(got) != want {
			t.Errorf("%s restored as %d bytes, %v", name, len(got), err)
		}
	}
}

func tarball(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		body := strings.Repeat("x", int(h.Size))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return &buf
}

func TestExtractRefusesHostileArchives(t *testing.T) {
	lim := Limits{MaxBytes: 100, MaxFiles: 3}
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
	}{
		{"outside the paths", []*tar.Header{{Typeflag: tar.TypeReg, Name: "src/main.go", Size: 1}}},
		{"escape", []*tar.Header{{Typeflag: tar.TypeReg, Name: "deps/../../evil", Size: 1}}},
		{"absolute", []*tar.Header{{Typeflag: tar.TypeReg, Name: "/tmp/evil", Size: 1}}},
		{"symlink", []*tar.Header{{Typeflag: tar.TypeSymlink, Name: "deps/l", Linkname: "/etc"}}},
		{"hard link", []*tar.Header{{Typeflag: tar.TypeLink, Name: "deps/l", Linkname: "/etc/passwd"}}},
		{"device", []*tar.Header{{Typeflag: tar.TypeChar, Name: "deps/tty"}}},
		{"too big", []*tar.Header{{Typeflag: tar.TypeReg, Name: "deps/big", Size: 101, Mode: 0o644}}},
		{"too many", []*tar.Header{{Typeflag: tar.TypeDir, Name: "deps/1/"}, {Typeflag: tar.TypeDir, Name: "deps/2/"}, {Typeflag: tar.TypeDir, Name: "deps/3/"}, {Typeflag: tar.TypeDir, Name: "deps/4/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			ws := filepath.Join(base, "ws")
			err := Extract(tarball(t, tc.hdrs...), ws, []string{filepath.Join(ws, "deps")}, lim)
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			for _, p := range []string{filepath.Join(base, "evil"), filepath.Join(ws, "src")} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

func TestExtractDoesNotFollowSymlinks(t *testing.T) {
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(ws, "deps"), 0o755)
	os.MkdirAll(outside, 0o755)
	if err := os.Symlink(outside, filepath.Join(ws, "deps", "sub")); err != nil {
		t.Fatal(err)
	}
	err := Extract(tarball(t, &tar.Header{Typeflag: tar.TypeReg, Name: "deps/sub/x", Size: 1, Mode: 0o644}), ws,
		[]string{filepath.Join(ws, "deps")}, Limits{MaxBytes: 100, MaxFiles: 10})
	if !errors.Is(err, ErrOutside) {
		t.Errorf("through a planted symlink: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Error("wrote through the symlink")
	}
}
