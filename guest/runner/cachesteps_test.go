package runner

import (
	"bytes"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	shimcache "github.com/solstice-ci/solstice/shim/cache"
)

// cacheService runs the shim's real cache service; it returns its URL
// and a token minter.
func cacheService(t *testing.T) (string, func(repo string) string) {
	m, err := shimcache.NewMinter(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := shimcache.NewStore(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nil)
	srv.Config.Handler = shimcache.NewServer(st, m, srv.URL, hclog.NewNullLogger())
	t.Cleanup(srv.Close)
	return srv.URL, func(repo string) string {
		tok, err := m.Mint(repo, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// cacheJob runs one job of steps for repository o/r (or another) with
// the cache service's URL and a token for that repository.
func cacheJob(t *testing.T, url string, token func(string) string, repo string, steps ...contract.Step) *run {
	return cacheJobHome(t, t.TempDir(), url, token, repo, steps...)
}

// cacheJobHome is cacheJob with a given HOME (a runner user's HOME stays
// the same from job to job).
func cacheJobHome(t *testing.T, home, url string, token func(string) string, repo string, steps ...contract.Step) *run {
	p := newPlan(steps...)
	p.Contexts["github"] = []byte(`{"repository":"` + repo + `","sha":"abc","ref":"refs/heads/main","server_url":"https://forge.example"}`)
	p.Env = []contract.EnvVar{{Name: "ACTIONS_CACHE_URL", Value: url}}
	p.Secrets = []string{"ACTIONS_CACHE_TOKEN"}
	return runJob(t, p, withSecrets(map[string]string{"ACTIONS_CACHE_TOKEN": token(repo)}), func(st *setup) {
		st.environ = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C"}
	})
}

func cacheUse(key, restoreKeys string) contract.Step {
	return contract.Step{ID: "c", Uses: "actions/cache@v4", With: contract.Strings{"key": key, "path": "deps\n~/.cache/tool", "restore-keys": restoreKeys}}
}

const showCache = `echo "hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }}"; cat deps/a 2>/dev/null || echo no-deps; cat ~/.cache/tool/t 2>/dev/null || echo no-tool`

func TestCacheSaveRestore(t *testing.T) {
	url, token := cacheService(t)
	home := t.TempDir()
	r := cacheJobHome(t, home, url, token, "o/r", cacheUse("k-1", ""), runStep(showCache+`; mkdir -p deps ~/.cache/tool; echo one > deps/a; echo tool > ~/.cache/tool/t`))
	r.expect(1, contract.Success, contract.Success)
	if out := r.output(1); out != "hit= matched=\nno-deps\nno-tool" {
		t.Errorf("run 1: %q", out)
	}
	if job := strings.Join(r.lines(contract.JobLevel), "\n"); !strings.Contains(job, "Cache saved with key: k-1") {
		t.Errorf("run 1 did not save: %q", job)
	}

	wipe := runStep(`rm -rf ~/.cache/tool`) // the same HOME: remove what run 1 left
	r = cacheJobHome(t, home, url, token, "o/r", wipe, cacheUse("k-1", ""), runStep(showCache))
	if out := r.output(2); out != "hit=true matched=k-1\none\ntool" {
		t.Errorf("run 2 (exact key): %q", out)
	}
	if job := strings.Join(r.lines(contract.JobLevel), "\n"); strings.Contains(job, "Post job cleanup") {
		t.Errorf("an exact hit saved again: %q", job)
	}

	r = cacheJobHome(t, home, url, token, "o/r", wipe, cacheUse("k-2", "nope-\nk-"), runStep(showCache))
	if out := r.output(2); out != "hit=false matched=k-1\none\ntool" {
		t.Errorf("run 3 (restore-keys): %q", out)
	}
	if job := strings.Join(r.lines(contract.JobLevel), "\n"); !strings.Contains(job, "Cache saved with key: k-2") {
		t.Errorf("run 3 did not save k-2: %q", job)
	}

	r = cacheJob(t, url, token, "other/repo", cacheUse("k-1", "k-"), runStep(showCache))
	if out := r.output(1); out != "hit= matched=\nno-deps\nno-tool" {
		t.Errorf("another repository saw the cache: %q", out)
	}
}

func TestCacheNotSavedOnFailure(t *testing.T) {
	url, token := cacheService(t)
	r := cacheJob(t, url, token, "o/r", cacheUse("k-f", ""), runStep(`mkdir deps && echo x > deps/a && exit 1`))
	r.expect(1, contract.Failure, contract.Failure)
	if job := strings.Join(r.lines(contract.JobLevel), "\n"); strings.Contains(job, "Cache saved") {
		t.Errorf("a failed job saved its cache: %q", job)
	}
	r = cacheJob(t, url, token, "o/r",
		contract.Step{Uses: "actions/cache/restore@v4", With: contract.Strings{"key": "k-f", "path": "deps", "fail-on-cache-miss": "true"}})
	r.expect(0, contract.Failure, contract.Failure)
}

func TestCacheSaveAndRestoreActions(t *testing.T) {
	url, token := cacheService(t)
	r := cacheJob(t, url, token, "o/r", runStep(`mkdir deps && echo s > deps/a`),
		contract.Step{Uses: "actions/cache/save@v4", With: contract.Strings{"key": "explicit", "path": "deps"}})
	r.expect(1, contract.Success, contract.Success)
	r = cacheJob(t, url, token, "o/r",
		contract.Step{ID: "c", Uses: "actions/cache/restore@v4", With: contract.Strings{"key": "explicit", "path": "deps"}},
		runStep(`echo "${{ steps.c.outputs.cache-hit }}"; cat deps/a`))
	if out := r.output(1); out != "true\ns" {
		t.Errorf("restore: %q", out)
	}
}

// Two jobs that both missed a key race to save it (Gitea may start a
// workflow twice for two quick pushes): the one that comes second gets
// "already exists", which is a warning, and its job still succeeds.
func TestCacheSaveOfExistingKeyWarns(t *testing.T) {
	url, token := cacheService(t)
	first := cacheJob(t, url, token, "o/r", runStep(`mkdir -p deps && echo y > deps/a`),
		contract.Step{Uses: "actions/cache/save@v4", With: contract.Strings{"key": "dup2", "path": "deps"}})
	first.expect(1, contract.Success, contract.Success)
	again := cacheJob(t, url, token, "o/r", runStep(`mkdir -p deps && echo z > deps/a`),
		contract.Step{Uses: "actions/cache/save@v4", With: contract.Strings{"key": "dup2", "path": "deps"}})
	again.expect(1, contract.Success, contract.Success)
	if log := strings.Join(again.lines(1), "\n"); !strings.Contains(log, "Unable to reserve cache with key dup2") {
		t.Errorf("the second save of dup2 did not warn: %q", log)
	}
}
