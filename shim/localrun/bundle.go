package localrun

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Snapshot is the commit a local run checks out: HEAD plus every
// uncommitted change (untracked files too, ignored ones not), as a git
// bundle.
type Snapshot struct {
	Repo   string // top-level directory
	Commit string
	Ref    string // the branch naming Commit inside the bundle
	Bundle string // path of the bundle file
	Dirty  bool   // the commit carries uncommitted changes
}

// snapshotRef names the commit inside the bundle. A bundle carries refs, and
// a checkout takes branches, so this is a branch: it exists in the local
// repository only while the bundle is written, under a name nobody uses.
func snapshotRef() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "refs/heads/solstice-run-" + hex.EncodeToString(b), nil
}

// TakeSnapshot bundles the repository around dir into out. The working
// tree, the real index and HEAD are left untouched: the changes are
// committed through a temporary index.
func TakeSnapshot(ctx context.Context, dir, out string) (*Snapshot, error) {
	top, err := git(ctx, dir, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%s is not in a git repository: solstice run checks out the repository's current commit: %w", dir, err)
	}
	head, err := git(ctx, top, nil, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return nil, fmt.Errorf("the repository has no commit yet: %w", err)
	}
	commit, dirty, err := commitWorkTree(ctx, top, head)
	if err != nil {
		return nil, err
	}
	ref, err := snapshotRef()
	if err != nil {
		return nil, err
	}
	// The empty old value makes update-ref refuse to touch an existing ref.
	if _, err := git(ctx, top, nil, "update-ref", ref, commit, ""); err != nil {
		return nil, err
	}
	defer git(context.WithoutCancel(ctx), top, nil, "update-ref", "-d", ref, commit)
	if _, err := git(ctx, top, nil, "bundle", "create", "--quiet", out, ref); err != nil {
		return nil, fmt.Errorf("bundle the repository: %w", err)
	}
	return &Snapshot{Repo: top, Commit: commit, Ref: ref, Bundle: out, Dirty: dirty}, nil
}

func commitWorkTree(ctx context.Context, top, head string) (string, bool, error) {
	idx, err := os.CreateTemp("", "solstice-index-")
	if err != nil {
		return "", false, err
	}
	idx.Close()
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}
	if _, err := git(ctx, top, env, "read-tree", head); err != nil {
		return "", false, err
	}
	if _, err := git(ctx, top, env, "add", "--all"); err != nil {
		return "", false, fmt.Errorf("stage uncommitted changes: %w", err)
	}
	tree, err := git(ctx, top, env, "write-tree")
	if err != nil {
		return "", false, err
	}
	headTree, err := git(ctx, top, nil, "rev-parse", head+"^{tree}")
	if err != nil {
		return "", false, err
	}
	if tree == headTree {
		return head, false, nil
	}
	env = append(env, "GIT_AUTHOR_NAME=solstice run", "GIT_AUTHOR_EMAIL=solstice@localhost",
		"GIT_COMMITTER_NAME=solstice run", "GIT_COMMITTER_EMAIL=solstice@localhost")
	commit, err := git(ctx, top, env, "commit-tree", tree, "-p", head, "-m", "solstice run: uncommitted changes")
	if err != nil {
		return "", false, err
	}
	return commit, true, nil
}

func git(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// BundleServer serves one bundle file to the Nomad client that fetches it,
// at an unguessable URL, for as long as the run lasts.
type BundleServer struct {
	URL string
	srv *http.Server
}

// ServeBundle starts serving path on addr (host:port; port 0 picks one).
func ServeBundle(addr, path string) (*BundleServer, error) {
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve the repository bundle: %w", err)
	}
	route := "/bundle/" + hex.EncodeToString(token) + "/" + filepath.Base(path)
	mux := http.NewServeMux()
	mux.HandleFunc(route, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	s := &BundleServer{URL: "http://" + l.Addr().String() + route, srv: &http.Server{Handler: mux}}
	go s.srv.Serve(l)
	return s, nil
}

// Close stops serving.
func (s *BundleServer) Close() error { return s.srv.Close() }
