//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/shim/github"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// cacheSteps restore (and, at the end of a successful job, save) deps
// under key, then report what the step matched and restored; write is
// what the job puts into the cache.
func cacheSteps(key, write string) []githubfake.Step {
	return []githubfake.Step{
		{ContextName: "c", Uses: "actions/cache@v4", With: map[string]string{"path": "deps", "key": key, "restore-keys": "deps-"}},
		{DisplayName: "Cache report", Run: `echo "hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }}"
if [ -f deps/content ]; then echo "restored: $(cat deps/content)"; else echo "restored: none"; fi
mkdir -p deps && echo ` + write + ` > deps/content`},
	}
}

// TestGitHubArtifactsAndCache is issue #19 against the fake GitHub (its
// results service: ArtifactService, CacheService v2, Azure block blobs),
// with real Nomad and QEMU guests that reach it directly. Job A uploads a
// directory and saves a cache; job B, of the same run, downloads the
// directory byte-identical and restores the cache by its exact key; a
// later run (C) restores it by a restore-keys prefix; a run of another
// repository (D) sees none of it.
func TestGitHubArtifactsAndCache(t *testing.T) {
	start := time.Now()
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	syncLabels(t, n)
	// The guests talk to the results service and its blobs themselves,
	// so the fake listens where a guest reaches it (a public test host).
	e := newGitHubEnv(t, githubfake.Options{Listener: NewTestHost(t).Listen(8080)}, n)
	e.register(t, 2, protocol.DefaultRunnerVersion)
	e.runShim(t, github.Config{})
	ctx := func(repo string) map[string]any {
		return map[string]any{"github": map[string]any{"repository": repo, "ref": "refs/heads/main", "workflow": "ci"}}
	}
	labels := []string{"solstice-test"}

	a := e.fake.QueueJob(githubfake.JobSpec{Name: "make", Labels: labels, ContextData: ctx("octo/app"), Steps: append(cacheSteps("deps-A", "A"),
		githubfake.Step{DisplayName: "Make files", Run: "mkdir -p out/sub\nhead -c 300000 /dev/urandom > out/sub/tool\necho hello > out/readme.txt\n(cd out && find . -type f | sort | xargs sha256sum) > sums.txt"},
		githubfake.Step{ContextName: "up", Uses: "actions/upload-artifact@v4", With: map[string]string{"name": "build", "path": "out/"}},
		githubfake.Step{Uses: "actions/upload-artifact@v4", With: map[string]string{"name": "sums", "path": "sums.txt"}},
		githubfake.Step{DisplayName: "Digest", Run: "echo digest=${{ steps.up.outputs.artifact-digest }}"},
	)})
	resA := e.wait(t, a, 10*time.Minute)

	b := e.fake.QueueJob(githubfake.JobSpec{Name: "use", Labels: labels, ContextData: ctx("octo/app"), Run: a, Steps: append([]githubfake.Step{
		{Uses: "actions/download-artifact@v4", With: map[string]string{"name": "build", "path": "out"}},
		{Uses: "actions/download-artifact@v4", With: map[string]string{"name": "sums"}},
		{DisplayName: "Compare", Run: "cd out && sha256sum -c ../sums.txt && echo all identical"},
	}, cacheSteps("deps-A", "A")...)})
	c := e.fake.QueueJob(githubfake.JobSpec{Name: "later", Labels: labels, ContextData: ctx("octo/app"), Steps: cacheSteps("deps-B", "B")})
	d := e.fake.QueueJob(githubfake.JobSpec{Name: "other", Labels: labels, ContextData: ctx("octo/other"), Steps: cacheSteps("deps-A", "D")})
	resB, resC, resD := e.wait(t, b, 10*time.Minute), e.wait(t, c, 10*time.Minute), e.wait(t, d, 10*time.Minute)

	for name, res := range map[string]*githubfake.Result{"A": resA, "B": resB, "C": resC, "D": resD} {
		if res.Conclusion != "succeeded" {
			t.Errorf("job %s: %s %v\n%s", name, res.Conclusion, stepsOf(res), allLogs(res))
		}
	}
	checkGitHubArtifact(t, e.fake.Artifacts(a.PlanID()), stepLog(t, resA, "Digest"))
	if !strings.Contains(stepLog(t, resB, "Compare"), "all identical") {
		t.Errorf("job B did not confirm the checksums:\n%s", allLogs(resB))
	}
	for _, c := range []struct {
		name string
		res  *githubfake.Result
		want []string
	}{
		{"A (miss, save)", resA, []string{"hit= matched=", "restored: none", "Cache saved with key: deps-A"}},
		{"B (exact key)", resB, []string{"hit=true matched=deps-A", "restored: A"}},
		{"C (restore-keys)", resC, []string{"hit=false matched=deps-A", "restored: A", "Cache saved with key: deps-B"}},
		{"D (other repository)", resD, []string{"hit= matched=", "restored: none", "Cache saved with key: deps-A"}},
	} {
		if log := allLogs(c.res); !containsAll(log, c.want) {
			t.Errorf("job %s: the logs lack one of %q:\n%s", c.name, c.want, log)
		}
	}
	checkCacheEntries(t, e.fake)
	for _, j := range []*githubfake.Job{a, b, c, d} {
		assertNoSecretsInNomad(t, n, j.AccessToken())
	}
	for _, res := range []*githubfake.Result{resA, resB, resC, resD} {
		for _, j := range []*githubfake.Job{a, b, c, d} {
			if strings.Contains(allLogs(res), j.AccessToken()) {
				t.Error("a job's access token reached a log")
			}
		}
	}
	e.assertNothingRejected(t)
	e.assertCleanedUp(t)
	t.Logf("TestGitHubArtifactsAndCache took %s", time.Since(start).Round(time.Second))
}

// checkGitHubArtifact: the run holds build and sums, and build's digest
// is the zip's, as the upload step reported it.
func checkGitHubArtifact(t *testing.T, arts []githubfake.ArtifactInfo, digestLog string) {
	t.Helper()
	byName := map[string]githubfake.ArtifactInfo{}
	for _, a := range arts {
		byName[a.Name] = a
	}
	build, ok := byName["build"]
	if _, sums := byName["sums"]; !ok || !sums || len(arts) != 2 {
		t.Fatalf("the run holds %+v, want build and sums", arts)
	}
	sum := sha256.Sum256(build.Data)
	hexSum := hex.EncodeToString(sum[:])
	if build.Size != int64(len(build.Data)) || build.Digest != "sha256:"+hexSum || !strings.Contains(digestLog, "digest="+hexSum) {
		t.Errorf("build: size %d of %d bytes, digest %s, zip sha256 %s; the step said:\n%s", build.Size, len(build.Data), build.Digest, hexSum, digestLog)
	}
}

// checkCacheEntries: octo/app holds deps-A and deps-B, octo/other its own
// deps-A only.
func checkCacheEntries(t *testing.T, fake *githubfake.Server) {
	t.Helper()
	keys := func(repo string) string {
		var k []string
		for _, e := range fake.CacheEntries(repo) {
			k = append(k, e.Key)
		}
		return strings.Join(k, " ")
	}
	if got := keys("octo/app"); got != "deps-A deps-B" {
		t.Errorf("octo/app cache entries: %q, want deps-A deps-B", got)
	}
	if got := keys("octo/other"); got != "deps-A" {
		t.Errorf("octo/other cache entries: %q, want deps-A", got)
	}
}

// allLogs is every log GitHub got for a job: the steps', the job's, and
// the live feed.
func allLogs(res *githubfake.Result) string {
	var texts []string
	for _, s := range res.StepResults {
		texts = append(texts, "== "+s.Name+"\n"+res.StepLogs[s.ExternalID].Text)
	}
	if res.JobLog != nil {
		texts = append(texts, "== job\n"+res.JobLog.Text)
	}
	for _, f := range res.Feed {
		texts = append(texts, strings.Join(f.Lines, "\n"))
	}
	return strings.Join(texts, "\n")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
