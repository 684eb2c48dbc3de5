package localrun

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sh(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func testRepo(t *testing.T) string {
	dir := t.TempDir()
	sh(t, dir, "git", "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("ignored.txt\n"), 0o644)
	sh(t, dir, "git", "add", ".")
	sh(t, dir, "git", "commit", "-q", "-m", "first")
	return dir
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// clone checks the snapshot out of its bundle, as the guest does.
func clone(t *testing.T, s *Snapshot) string {
	dst := filepath.Join(t.TempDir(), "clone")
	sh(t, ".", "git", "init", "-q", dst)
	sh(t, dst, "git", "fetch", "-q", s.Bundle, s.Ref)
	sh(t, dst, "git", "checkout", "-q", s.Commit)
	return dst
}

func TestSnapshotCleanTreeIsHead(t *testing.T) {
	repo := testRepo(t)
	head := sh(t, repo, "git", "rev-parse", "HEAD")
	s, err := TakeSnapshot(ctx(t), repo, filepath.Join(t.TempDir(), "r.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit != head || s.Dirty {
		t.Fatalf("snapshot %+v, want HEAD %s and clean", s, head)
	}
	if data, _ := os.ReadFile(filepath.Join(clone(t, s), "a.txt")); string(data) != "one\n" {
		t.Fatalf("a.txt = %q", data)
	}
}

func TestSnapshotCarriesUncommittedChanges(t *testing.T) {
	repo := testRepo(t)
	head := sh(t, repo, "git", "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("two\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "new.txt"), []byte("new\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "ignored.txt"), []byte("secret\n"), 0o644)
	statusBefore := sh(t, repo, "git", "status", "--porcelain")

	s, err := TakeSnapshot(ctx(t), repo, filepath.Join(t.TempDir(), "r.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Dirty || s.Commit == head {
		t.Fatalf("snapshot %+v should be a new commit on top of %s", s, head)
	}
	dst := clone(t, s)
	for file, want := range map[string]string{"a.txt": "two\n", "new.txt": "new\n"} {
		if data, _ := os.ReadFile(filepath.Join(dst, file)); string(data) != want {
			t.Errorf("%s = %q, want %q", file, data, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "ignored.txt")); err == nil {
		t.Error("an ignored file went into the snapshot")
	}
	if got := sh(t, repo, "git", "rev-parse", "HEAD"); got != head {
		t.Error("taking a snapshot moved HEAD")
	}
	if got := sh(t, repo, "git", "status", "--porcelain"); got != statusBefore {
		t.Errorf("taking a snapshot changed the index or work tree:\n%s\nvs\n%s", got, statusBefore)
	}
	if refs := sh(t, repo, "git", "for-each-ref", "refs/heads/solstice-run-*"); refs != "" {
		t.Errorf("the snapshot ref was left behind: %s", refs)
	}
}

func TestSnapshotOutsideARepository(t *testing.T) {
	_, err := TakeSnapshot(ctx(t), t.TempDir(), filepath.Join(t.TempDir(), "r.bundle"))
	if err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Fatalf("TakeSnapshot outside a repo: %v", err)
	}
}

func TestServeBundle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.bundle")
	os.WriteFile(p, []byte("bundle bytes"), 0o644)
	s, err := ServeBundle("127.0.0.1:0", p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "bundle bytes" {
		t.Fatalf("GET bundle = %q", body)
	}
	guess := s.URL[:strings.Index(s.URL, "/bundle/")] + "/bundle/r.bundle"
	if resp, err := http.Get(guess); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("the bundle is served at a guessable URL")
	}
}
