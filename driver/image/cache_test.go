package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// payload stands in for a disk image; verifyPrefix plays qemu-img's part.
var payload = bytes.Repeat([]byte("solstice-image "), 40_000) // 600 kB

func verifyPrefix(_ context.Context, path, _ string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, payload) {
		return errors.New("not the image we expected")
	}
	return nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "none":
		return data
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	}
	return buf.Bytes()
}

func newCache(t *testing.T) *Cache {
	return &Cache{Dir: t.TempDir(), Log: hclog.NewNullLogger(), Verify: verifyPrefix}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// server serves files by path and counts full GETs per path.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	gets  atomic.Int32
	// cutAfter, when > 0, makes the first response stop after that many bytes.
	cutAfter atomic.Int64
	ranges   atomic.Int32
}

func newServer(t *testing.T) *server {
	s := &server{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) put(path string, data []byte) string {
	s.mu.Lock()
	s.files[path] = data
	s.mu.Unlock()
	return s.URL + path
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.gets.Add(1)
	if rg := r.Header.Get("Range"); rg != "" {
		s.ranges.Add(1)
		from, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[from:])
		return
	}
	if n := s.cutAfter.Swap(0); n > 0 {
		// Promise everything, deliver a part, then drop the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	time.Sleep(50 * time.Millisecond) // long enough for concurrent callers to pile up
	w.Write(data)
}

func TestEnsureDecompresses(t *testing.T) {
	for _, kind := range []string{"none", "gzip", "zstd", "xz"} {
		t.Run(kind, func(t *testing.T) {
			srv := newServer(t)
			raw := compress(t, kind, payload)
			url := srv.put("/img."+kind, raw)
			c := newCache(t)
			path, err := c.Ensure(ctx(t), Source{Label: "test", URL: url, SHA256: sum(raw), Format: "qcow2", Compression: kind})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, payload) {
				t.Fatalf("cached image differs from the original (%d bytes)", len(got))
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm()&0o222 != 0 {
				t.Fatalf("cached base is writable: %v", st.Mode())
			}
		})
	}
}

func TestEnsureFetchesOnceForConcurrentTasks(t *testing.T) {
	srv := newServer(t)
	url := srv.put("/img", payload)
	c := newCache(t)
	src := Source{Label: "test", URL: url, SHA256: sum(payload), Format: "qcow2"}
	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range paths {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			paths[i], errs[i] = c.Ensure(ctx(t), src)
		}(i)
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("caller %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if n := srv.gets.Load(); n != 1 {
		t.Fatalf("8 concurrent tasks caused %d downloads, want 1", n)
	}
	if _, err := c.Ensure(ctx(t), src); err != nil || srv.gets.Load() != 1 {
		t.Fatalf("a cached image was downloaded again (%d gets, %v)", srv.gets.Load(), err)
	}
}

func TestEnsureResumesInterruptedDownload(t *testing.T) {
	srv := newServer(t)
	url := srv.put("/img", payload)
	srv.cutAfter.Store(100_000)
	c := newCache(t)
	src := Source{Label: "test", URL: url, SHA256: sum(payload), Format: "qcow2"}
	if _, err := c.Ensure(ctx(t), src); err == nil {
		t.Fatal("a cut-off download succeeded")
	}
	path, err := c.Ensure(ctx(t), src)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ranges.Load() != 1 {
		t.Fatalf("the second attempt did not resume with a Range request")
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, payload) {
		t.Fatal("resumed image differs from the original")
	}
}

func TestEnsureRefusesBadImages(t *testing.T) {
	srv := newServer(t)
	good := srv.put("/good", payload)
	corrupt := srv.put("/corrupt", []byte("not a disk image"))
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"checksum mismatch", Source{Label: "omnios", URL: good, SHA256: sum([]byte("other")), Format: "qcow2"}, "checksum mismatch"},
		{"corrupt image", Source{Label: "omnios", URL: corrupt, SHA256: sum([]byte("not a disk image")), Format: "qcow2"}, "corrupt image"},
		{"http without sha256", Source{Label: "omnios", URL: good, Format: "qcow2"}, "needs a sha256"},
		{"not found", Source{Label: "omnios", URL: srv.URL + "/missing", SHA256: sum(payload), Format: "qcow2"}, "404"},
		{"bad compression", Source{Label: "omnios", URL: good, SHA256: sum(payload), Format: "qcow2", Compression: "zstd"}, "zstd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			_, err := c.Ensure(ctx(t), tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `image "omnios"`) {
				t.Fatalf("Ensure() = %v, want an error naming the image and %q", err, tt.want)
			}
			assertNoEntries(t, c.Dir)
		})
	}
}

// assertNoEntries fails if anything a later task could boot from, or resume
// from, is left in the cache.
func assertNoEntries(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			t.Errorf("failed fetch left %s in the cache", p)
		}
		return nil
	})
}

func TestEnsureLocalFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "base.qcow2")
	os.WriteFile(src, payload, 0o644)
	c := newCache(t)
	for _, s := range []Source{
		{Label: "plain path", URL: src, Format: "qcow2"},
		{Label: "file url with sha", URL: "file://" + src, SHA256: sum(payload), Format: "qcow2"},
	} {
		path, err := c.Ensure(ctx(t), s)
		if err != nil {
			t.Fatalf("%s: %v", s.Label, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, payload) {
			t.Fatalf("%s: cached copy differs", s.Label)
		}
	}
	if got, _ := os.ReadFile(src); !bytes.Equal(got, payload) {
		t.Fatal("the local source file was changed or removed")
	}
	// A changed file is a different image: it must not be served stale.
	changed := append([]byte("v2 "), payload...)
	os.WriteFile(src, changed, 0o644)
	c.Verify = nil
	path, err := c.Ensure(ctx(t), Source{Label: "plain path", URL: src, Format: "qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, changed) {
		t.Fatal("a changed local image was served from the stale cache entry")
	}
}

// TestEnsureRefusesImagesOverTheCap: a download larger than MaxBytes, by
// its announced length or by what it actually sends, and an image that
// decompresses past MaxBytes are refused and leave nothing to resume from.
func TestEnsureRefusesImagesOverTheCap(t *testing.T) {
	srv := newServer(t)
	packed := compress(t, "zstd", payload)
	announcing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	}))
	defer announcing.Close()
	tests := []struct {
		name string
		src  Source
		max  int64
		want string
	}{
		{"announced too large", Source{URL: announcing.URL, SHA256: sum(payload)}, int64(len(payload)) - 1,
			"the server announces 600000 bytes, the cap allows 599999: the image is larger than max_image_size (599999 bytes)"},
		{"decompresses too large", Source{URL: srv.put("/bomb", packed), SHA256: sum(packed), Compression: "zstd"}, int64(len(payload)) / 2,
			"decompress (zstd): over the size cap of 300000 bytes: the image is larger than max_image_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			c.MaxBytes = tt.max
			tt.src.Label, tt.src.Format = "omnios", "qcow2"
			_, err := c.Ensure(ctx(t), tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ensure() = %v, want %q", err, tt.want)
			}
			assertNoEntries(t, c.Dir)
		})
	}
}

// TestEnsureCapsWhatIsSent: a server that announces no length (chunked)
// is cut off at the cap, not trusted to stop.
func TestEnsureCapsWhatIsSent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 10; i++ {
			w.Write(payload[:len(payload)/10])
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c := newCache(t)
	c.MaxBytes = 100_000
	_, err := c.Ensure(ctx(t), Source{Label: "omnios", URL: srv.URL, SHA256: sum(payload), Format: "qcow2"})
	if err == nil || !strings.Contains(err.Error(), "over the size cap of 100000 bytes") {
		t.Fatalf("Ensure() = %v, want the size cap", err)
	}
	assertNoEntries(t, c.Dir)
}

func TestEnsureReportsProgress(t *testing.T) {
	srv := newServer(t)
	url := srv.put("/img", payload)
	srv.cutAfter.Store(100_000)
	c := newCache(t)
	src := Source{Label: "test", URL: url, SHA256: sum(payload), Format: "qcow2"}
	if _, err := c.Ensure(ctx(t), src); err == nil {
		t.Fatal("a cut-off download succeeded")
	}
	var mu sync.Mutex
	var seen []Progress
	src.Progress = func(p Progress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	}
	if _, err := c.Ensure(ctx(t), src); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no progress reported")
	}
	for i, p := range seen {
		if p.Total != int64(len(payload)) {
			t.Errorf("report %d: total %d, want %d", i, p.Total, len(payload))
		}
		if p.Done < 100_000 || (i > 0 && p.Done < seen[i-1].Done) {
			t.Errorf("report %d: done %d after %v: a resumed download counts from what it has, and never goes back", i, p.Done, seen[:i])
		}
	}
	if last := seen[len(seen)-1]; last.Done != int64(len(payload)) {
		t.Errorf("last report: done %d, want %d", last.Done, len(payload))
	}
}

func TestCounterReportsAtMostEveryInterval(t *testing.T) {
	var got []Progress
	now := time.Unix(1000, 0)
	c := newCounter(func(p Progress) { got = append(got, p) }, 10, 1010)
	c.start, c.last, c.now = now, now, func() time.Time { return now }
	for _, step := range []struct {
		after time.Duration
		bytes int
	}{{0, 100}, {progressEvery / 2, 100}, {progressEvery, 100}, {progressEvery, 200}} {
		now = now.Add(step.after)
		c.Write(make([]byte, step.bytes))
	}
	c.flush()
	want := []Progress{
		{Done: 310, Total: 1010, Rate: 300 / (1.5 * progressEvery.Seconds())},
		{Done: 510, Total: 1010, Rate: 500 / (2.5 * progressEvery.Seconds())},
		{Done: 510, Total: 1010, Rate: 500 / (2.5 * progressEvery.Seconds())},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reports %v, want %v", got, want)
	}
}
