package githubfake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	guestartifact "github.com/solstice-ci/solstice/guest/artifact"
	"github.com/solstice-ci/solstice/guest/cache"
)

// acquireJob queues spec on a fresh runner session and acquires it.
func acquireJob(t *testing.T, s *Server, spec JobSpec) acquired {
	t.Helper()
	c, id, name := jitClient(t, s, s.JITConfig("r-"+spec.Name, nil))
	c.authenticate()
	c.openSession(id, name)
	s.QueueJob(spec)
	return acquire(t, c)
}

// The guest's own artifact client round-trips through the fake: a job
// uploads, a dependent job of the same run lists and downloads the same
// bytes, and another run sees nothing.
func TestArtifactsWithGuestClient(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "a.txt")
	os.WriteFile(src, randBytes(50000), 0o644) // incompressible: several 16 KiB blocks

	up := acquireJob(t, s, JobSpec{Name: "make"})
	c, err := guestartifact.New(up.resultsURL, up.token, guestartifact.WithBlockSize(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Upload(ctx, guestartifact.Upload{Name: "build", Files: []guestartifact.File{{Name: "a.txt", Path: src}}, Level: 6, RetentionDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	arts := s.Artifacts(up.planID)
	if len(arts) != 1 || arts[0].Size != got.Size || arts[0].Digest != "sha256:"+got.Digest || arts[0].ID != got.ID {
		t.Fatalf("fake holds %+v, the upload says %+v", arts, got)
	}

	s.mu.Lock()
	first := s.jobs[0]
	s.mu.Unlock()
	down := acquireJob(t, s, JobSpec{Name: "use", Run: first})
	c2, _ := guestartifact.New(down.resultsURL, down.token)
	list, err := c2.List(ctx, "build")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %+v", err, list)
	}
	dest := filepath.Join(dir, "out")
	if err := c2.Download(ctx, list[0], dest, dir, guestartifact.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if a, b := must(os.ReadFile(src)), must(os.ReadFile(filepath.Join(dest, "a.txt"))); !bytes.Equal(a, b) {
		t.Error("downloaded bytes differ")
	}
	other := acquireJob(t, s, JobSpec{Name: "other"})
	c3, _ := guestartifact.New(other.resultsURL, other.token)
	if list, err := c3.List(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("another run lists %+v, %v", list, err)
	}
	noRejections(t, s)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The guest's cache client against the fake: save, exact and prefix
// lookups, a second save of the key refused as existing, and another
// repository seeing nothing.
func TestCacheWithGuestClient(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	ctx := context.Background()
	version := cache.Version([]string{"deps"}, cache.Compression)
	gh := func(repo string) map[string]any { return map[string]any{"github": map[string]any{"repository": repo}} }
	client := func(a acquired) *cache.Client {
		c, err := cache.New(a.resultsURL, a.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := client(acquireJob(t, s, JobSpec{Name: "one", ContextData: gh("octo/app")}))
	if _, ok, err := a.Lookup(ctx, "deps-A", []string{"deps-"}, version); ok || err != nil {
		t.Fatalf("lookup before any save: %v %v", ok, err)
	}
	if n, err := a.Save(ctx, "deps-A", version, strings.NewReader("archive A")); err != nil || n != 9 {
		t.Fatalf("save: %d %v", n, err)
	}
	if _, err := a.Save(ctx, "deps-A", version, strings.NewReader("again")); !errors.Is(err, cache.ErrExists) {
		t.Errorf("second save: %v, want ErrExists", err)
	}
	b := client(acquireJob(t, s, JobSpec{Name: "two", ContextData: gh("octo/app")}))
	for _, tc := range []struct {
		key    string
		want   string
		restor []string
	}{{"deps-A", "deps-A", nil}, {"deps-B", "deps-A", []string{"deps-"}}, {"deps-B", "", nil}} {
		hit, ok, err := b.Lookup(ctx, tc.key, tc.restor, version)
		if err != nil || ok != (tc.want != "") || hit.Key != tc.want {
			t.Errorf("lookup %s %v: %+v %v %v, want %q", tc.key, tc.restor, hit, ok, err, tc.want)
		}
		if ok {
			f, err := b.Download(ctx, hit, t.TempDir(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(f.Name())
			f.Close()
			if string(data) != "archive A" {
				t.Errorf("downloaded %q", data)
			}
		}
	}
	o := client(acquireJob(t, s, JobSpec{Name: "three", ContextData: gh("octo/other")}))
	if _, ok, _ := o.Lookup(ctx, "deps-A", []string{"deps-"}, version); ok {
		t.Error("another repository sees octo/app's cache")
	}
	noRejections(t, s)
}

// What the fake refuses, as GitHub would: camelCase or unknown fields,
// ids that are not the token's, bad versions and keys, a token sent to a
// SAS URL, writing through a read SAS.
func TestResultsArtifactCacheStrictness(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	a := acquireJob(t, s, JobSpec{Name: "strict"})
	art := func(method string, body map[string]any) resp {
		return do(t, "POST", a.resultsURL+"twirp/github.actions.results.api.v1.ArtifactService/"+method, a.hdr(), body)
	}
	cch := func(method string, body map[string]any) resp {
		return do(t, "POST", a.resultsURL+"twirp/github.actions.results.api.v1.CacheService/"+method, a.hdr(), body)
	}
	ids := func(extra map[string]any) map[string]any {
		m := map[string]any{"workflow_run_backend_id": a.planID, "workflow_job_run_backend_id": a.jobID}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	v := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		call func() resp
		want string
	}{
		{"camelCase ids", func() resp {
			return art("CreateArtifact", map[string]any{"workflowRunBackendId": a.planID, "name": "x", "version": 4})
		}, "unknown field"},
		{"foreign run id", func() resp {
			return art("CreateArtifact", map[string]any{"workflow_run_backend_id": "x", "workflow_job_run_backend_id": a.jobID, "name": "x", "version": 4})
		}, "not the token's"},
		{"version 3", func() resp { return art("CreateArtifact", ids(map[string]any{"name": "x", "version": 3})) }, "version must be 4"},
		{"bad name", func() resp { return art("CreateArtifact", ids(map[string]any{"name": "a/b", "version": 4})) }, "name"},
		{"size on create", func() resp { return art("CreateArtifact", ids(map[string]any{"name": "x", "version": 4, "size": "1"})) }, "unknown field"},
		{"finalize unknown", func() resp { return art("FinalizeArtifact", ids(map[string]any{"name": "nope", "size": "1"})) }, "no artifact"},
		{"cache version", func() resp { return cch("CreateCacheEntry", map[string]any{"key": "k", "version": "1"}) }, "SHA-256"},
		{"cache comma key", func() resp { return cch("CreateCacheEntry", map[string]any{"key": "a,b", "version": v}) }, "without commas"},
		{"restore keys on create", func() resp {
			return cch("CreateCacheEntry", map[string]any{"key": "k", "version": v, "restore_keys": []string{"a"}})
		}, "restore_keys"},
		{"finalize without size", func() resp { return cch("FinalizeCacheEntryUpload", map[string]any{"key": "k", "version": v}) }, "size_bytes"},
	} {
		before := len(s.Rejections())
		if r := tc.call(); r.status < 400 {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			continue
		}
		expectRejection(t, s, before, tc.want)
	}

	r := art("CreateArtifact", ids(map[string]any{"name": "ok", "version": 4}))
	var created struct {
		URL string `json:"signed_upload_url"`
	}
	r.json(t, &created)
	before := len(s.Rejections())
	put := func(u string, hdr map[string]string) int {
		req, _ := http.NewRequest("PUT", u, strings.NewReader("data"))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(created.URL+"&comp=block&blockid=QUFB", a.hdr()); code != http.StatusForbidden {
		t.Errorf("a block with the job token: %d, want 403", code)
	}
	expectRejection(t, s, before, "Authorization header")
	readOnly := strings.Replace(created.URL, "sp=cw", "sp=r", 1)
	if code := put(readOnly+"&comp=block&blockid=QUFB", nil); code != http.StatusForbidden {
		t.Errorf("a block through a tampered SAS: %d, want 403", code)
	}
	if code := put(created.URL+"&comp=blocklist", nil); code != http.StatusBadRequest {
		t.Errorf("a block list naming nothing staged: %d, want 400", code)
	}
}
