package runner

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

// gitFixture is a bare repository with two commits on main (tag v1 on the
// first) and a branch feature.
type gitFixture struct {
	dir    string // holds the bare repositories
	bare   string
	c1, c2 string
	feat   string
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@e", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	f := &gitFixture{dir: t.TempDir()}
	f.bare = filepath.Join(f.dir, "o", "r.git")
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	writeFile(t, work, "README", "one\n", 0o644)
	git(t, work, "add", ".")
	git(t, work, "commit", "-q", "-m", "one")
	git(t, work, "tag", "v1")
	f.c1 = git(t, work, "rev-parse", "HEAD")
	writeFile(t, work, "README", "two\n", 0o644)
	git(t, work, "commit", "-q", "-am", "two")
	f.c2 = git(t, work, "rev-parse", "HEAD")
	git(t, work, "checkout", "-q", "-b", "feature", f.c1)
	writeFile(t, work, "FEATURE", "f\n", 0o644)
	git(t, work, "add", ".")
	git(t, work, "commit", "-q", "-m", "feature")
	f.feat = git(t, work, "rev-parse", "HEAD")
	git(t, work, "checkout", "-q", "main")
	git(t, f.dir, "clone", "-q", "--bare", work, f.bare)
	git(t, f.bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	return f
}

// checkoutPlan checks out (with the inputs given) and then runs inspect
// in the checked-out directory.
func (f *gitFixture) checkoutPlan(co *contract.Checkout, with contract.Strings, inspect string) *contract.Plan {
	dir := with["path"]
	p := newPlan(contract.Step{Uses: "actions/checkout@v4", With: with}, contract.Step{Run: inspect, WorkingDirectory: dir})
	p.Checkout = co
	return p
}

func TestCheckout(t *testing.T) {
	f := newGitFixture(t)
	url := "file://" + f.bare
	inspect := `echo "head=$(git rev-parse HEAD) branch=$(git rev-parse --abbrev-ref HEAD) shallow=$(git rev-parse --is-shallow-repository) count=$(git rev-list --count HEAD) tags=$(git tag | tr '\n' ,)"`
	tests := []struct {
		name string
		co   *contract.Checkout
		with contract.Strings
		want string
	}{
		{"exact sha of the event, shallow", &contract.Checkout{URL: url, SHA: f.c1, Ref: "refs/heads/main"}, nil,
			"head=" + f.c1 + " branch=main shallow=true count=1 tags="},
		{"unqualified ref of the event", &contract.Checkout{URL: url, SHA: f.c2, Ref: "main"}, nil,
			"head=" + f.c2 + " branch=main shallow=true count=1 tags="},
		{"all history", &contract.Checkout{URL: url, SHA: f.c2, Ref: "refs/heads/main"}, contract.Strings{"fetch-depth": "0"},
			"head=" + f.c2 + " branch=main shallow=false count=2 tags=v1,"},
		{"sha only", &contract.Checkout{URL: url, SHA: f.c1}, nil,
			"head=" + f.c1 + " branch=HEAD shallow=true count=1 tags="},
		{"tag of the event", &contract.Checkout{URL: url, SHA: f.c1, Ref: "refs/tags/v1"}, contract.Strings{"fetch-depth": "2"},
			"head=" + f.c1 + " branch=HEAD shallow=false count=1 tags=v1,"}, // the root commit: nothing to cut
		{"ref input: branch name", &contract.Checkout{URL: url, SHA: f.c2, Ref: "refs/heads/main"}, contract.Strings{"ref": "feature"},
			"head=" + f.feat + " branch=feature shallow=true count=1 tags="},
		{"ref input: tag name", &contract.Checkout{URL: url, SHA: f.c2}, contract.Strings{"ref": "v1"},
			"head=" + f.c1 + " branch=HEAD shallow=true count=1 tags=v1,"},
		{"ref input: sha", &contract.Checkout{URL: url, SHA: f.c2}, contract.Strings{"ref": f.c1},
			"head=" + f.c1 + " branch=HEAD shallow=true count=1 tags="},
		{"path input", &contract.Checkout{URL: url, SHA: f.c2, Ref: "refs/heads/main"}, contract.Strings{"path": "src/r", "fetch-depth": "${{ 3 }}"},
			"head=" + f.c2 + " branch=main shallow=false count=2 tags="},
		{"other repository from server_url, default branch", nil, contract.Strings{"repository": "o/r.git"},
			"head=" + f.c2 + " branch=main shallow=true count=1 tags="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.checkoutPlan(tt.co, tt.with, inspect)
			if tt.co == nil {
				p.Contexts["github"] = json.RawMessage(`{"repository":"o/r","server_url":"file://` + f.dir + `"}`)
			}
			r := runJob(t, p)
			r.expect(0, contract.Success, contract.Success)
			if got := r.output(1); got != tt.want {
				t.Errorf("got  %s\nwant %s\n%s", got, tt.want, r.output(0))
			}
		})
	}
}

func TestCheckoutErrors(t *testing.T) {
	f := newGitFixture(t)
	url := "file://" + f.bare
	tests := []struct {
		name string
		with contract.Strings
		want string
	}{
		{"path outside the workspace", contract.Strings{"path": "../elsewhere"}, "is not under"},
		{"unknown branch", contract.Strings{"ref": "nosuch", "fetch-depth": "0"}, "A branch or tag with the name 'nosuch' could not be found"},
		{"git fails", contract.Strings{"ref": "nosuch"}, "The process '"},
		{"unexpected input warns only", contract.Strings{"fetch-depth": "1", "colour": "red", "ref": "nosuch2"}, "Unexpected input(s) 'colour'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runJob(t, f.checkoutPlan(&contract.Checkout{URL: url, SHA: f.c2}, tt.with, "true"))
			r.expect(0, contract.Failure, contract.Failure)
			if !strings.Contains(r.system(0), tt.want) {
				t.Errorf("want %q in\n%s", tt.want, r.system(0))
			}
		})
	}
}

func TestCheckoutFromBundle(t *testing.T) {
	f := newGitFixture(t)
	bundle := filepath.Join(t.TempDir(), "repo.bundle")
	git(t, f.bare, "bundle", "create", bundle, "--all")
	inspect := `echo "head=$(git rev-parse HEAD) branch=$(git rev-parse --abbrev-ref HEAD) origin=$(git remote get-url origin)"`
	tests := []struct {
		name string
		co   *contract.Checkout
		want string
	}{
		{"sha and branch", &contract.Checkout{Bundle: bundle, SHA: f.c1, Ref: "refs/heads/main", URL: "https://forge.example/o/r.git"},
			"head=" + f.c1 + " branch=main origin=https://forge.example/o/r.git"},
		{"bundle head", &contract.Checkout{Bundle: bundle}, "head=" + f.c2 + " branch=HEAD origin=" + bundle},
		{"ref only", &contract.Checkout{Bundle: bundle, Ref: "refs/heads/feature"}, "head=" + f.feat + " branch=feature origin=" + bundle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runJob(t, f.checkoutPlan(tt.co, nil, inspect))
			r.expect(0, contract.Success, contract.Success)
			if got := r.output(1); got != tt.want {
				t.Errorf("got  %s\nwant %s\n%s", got, tt.want, r.output(0))
			}
		})
	}
}

func TestCheckoutSubmodules(t *testing.T) {
	f := newGitFixture(t)
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	git(t, work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "file://"+f.bare, "lib")
	git(t, work, "commit", "-q", "-m", "with submodule")
	super := filepath.Join(f.dir, "o", "super.git")
	git(t, f.dir, "clone", "-q", "--bare", work, super)
	sha := git(t, super, "rev-parse", "HEAD")
	for _, mode := range []string{"false", "true"} {
		r := runJob(t, f.checkoutPlan(&contract.Checkout{URL: "file://" + super, SHA: sha, Ref: "refs/heads/main"}, contract.Strings{"submodules": mode}, "cat lib/README || echo missing"),
			// git refuses file:// submodules unless told otherwise; the
			// agent keeps configuration it finds in its environment.
			withEnv("GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.file.allow", "GIT_CONFIG_VALUE_0=always"))
		r.expect(0, contract.Success, contract.Success)
		want := map[string]string{"false": "missing", "true": "two"}[mode]
		if !strings.Contains(r.output(1), want) {
			t.Errorf("submodules=%s: %q\n%s", mode, r.output(1), r.output(0))
		}
	}
}

// The token reaches the server as actions/checkout sends it, and nowhere
// else: not on any command line (checked by a git wrapper that logs its
// arguments and by a ps sampler running during the checkout), not in any
// event, not even when a later step prints the persisted git config.
func TestCheckoutTokenSecrecy(t *testing.T) {
	f := newGitFixture(t)
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("no git-http-backend")
	}
	const token = "ghs_TopSecretToken1234567890"
	var mu sync.Mutex
	var auths []string
	doubled := false
	cgiH := &cgi.Handler{Path: backend, Root: "/", Env: []string{"GIT_PROJECT_ROOT=" + f.dir, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		doubled = doubled || len(r.Header.Values("Authorization")) > 1
		mu.Unlock()
		cgiH.ServeHTTP(w, r)
	}))
	defer srv.Close()

	tmp := t.TempDir()
	argvLog, psLog := filepath.Join(tmp, "argv.log"), filepath.Join(tmp, "ps.log")
	realGit, _ := exec.LookPath("git")
	wrapDir := filepath.Join(tmp, "bin")
	writeFile(t, wrapDir, "git", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> "+argvLog+"\nsleep 0.1\nexec "+realGit+" \"$@\"\n", 0o755)

	p := newPlan(
		contract.Step{Run: `(while :; do ps -eo args >> ` + psLog + `; sleep 0.02; done) > /dev/null 2>&1 &`},
		contract.Step{Uses: "actions/checkout@v4"},
		contract.Step{Run: `cat README; git config --get-regexp 'http\..*extraheader'; git fetch -q origin main && echo fetched again`},
		contract.Step{Uses: "actions/checkout@v4"}, // reuses the repository and its persisted header
	)
	p.Secrets = []string{"GITHUB_TOKEN"}
	p.Checkout = &contract.Checkout{URL: srv.URL + "/o/r.git", SHA: f.c2, Ref: "refs/heads/main"}
	r := runJob(t, p, withSecrets(map[string]string{"GITHUB_TOKEN": token}), func(s *setup) {
		s.environ = []string{"PATH=" + wrapDir + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	})
	r.expect(1, contract.Success, contract.Success)
	r.expect(2, contract.Success, contract.Success)
	r.expect(3, contract.Success, contract.Success)

	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	mu.Lock()
	sawAuth := false
	for _, a := range auths {
		sawAuth = sawAuth || strings.EqualFold(a, "basic "+basic)
	}
	mu.Unlock()
	if !sawAuth || doubled {
		t.Errorf("the server got the token header wrong (doubled: %v): %q", doubled, auths)
	}
	if out := r.output(2); !strings.Contains(out, "two") || !strings.Contains(out, "extraheader AUTHORIZATION: basic ***") || !strings.Contains(out, "fetched again") {
		t.Errorf("later step: %q", out)
	}
	for name, data := range map[string]string{"events": r.raw(), "argv": readString(t, argvLog), "ps": readString(t, psLog)} {
		if strings.Contains(data, token) || strings.Contains(data, basic) {
			t.Errorf("the token is in the %s", name)
		}
	}
	if argv := readString(t, argvLog); !strings.Contains(argv, "fetch") {
		t.Errorf("the git wrapper saw no fetch: %s", argv)
	}
	if ps := readString(t, psLog); !strings.Contains(ps, "git") {
		t.Errorf("the ps sampler never saw git")
	}
}

func TestCheckoutReuse(t *testing.T) {
	f := newGitFixture(t)
	p := newPlan(
		contract.Step{Uses: "actions/checkout@v4"},
		runStep("touch junk; echo changed > README"),
		contract.Step{Uses: "actions/checkout@v4", With: contract.Strings{"ref": "main"}},
		runStep("ls; cat README; git rev-parse HEAD"),
	)
	p.Checkout = &contract.Checkout{URL: "file://" + f.bare, SHA: f.c1, Ref: "refs/heads/main"}
	r := runJob(t, p)
	r.expect(2, contract.Success, contract.Success)
	if got := r.output(3); got != "README\ntwo\n"+f.c2 {
		t.Errorf("got %q", got)
	}
	if strings.Contains(r.system(2), "git init") {
		t.Errorf("the repository was not reused:\n%s", r.system(2))
	}
}

func readString(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRefspecs(t *testing.T) {
	tests := []struct {
		ref, sha string
		all      bool
		want     []string
	}{
		{"refs/heads/main", "abc", false, []string{"+abc:refs/remotes/origin/main"}},
		{"refs/pull/1/merge", "abc", false, []string{"+abc:refs/remotes/pull/1/merge"}},
		{"refs/tags/v1", "abc", false, []string{"+abc:refs/tags/v1"}},
		{"", "abc", false, []string{"abc"}},
		{"main", "", false, []string{"+refs/heads/main*:refs/remotes/origin/main*", "+refs/tags/main*:refs/tags/main*"}},
		{"refs/heads/main", "", false, []string{"+refs/heads/main:refs/remotes/origin/main"}},
		{"refs/tags/v1", "", false, []string{"+refs/tags/v1:refs/tags/v1"}},
		{"refs/heads/main", "abc", true, []string{headsRefspec, tagsRefspec}},
		{"refs/pull/1/merge", "abc", true, []string{headsRefspec, tagsRefspec, "+abc:refs/remotes/pull/1/merge"}},
	}
	for _, tt := range tests {
		if got := refspecsFor(tt.ref, tt.sha, tt.all); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("refspecsFor(%q, %q, %v) = %q", tt.ref, tt.sha, tt.all, got)
		}
	}
}
