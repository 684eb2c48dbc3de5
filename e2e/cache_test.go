//go:build e2e

package e2e

import (
	"bytes"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/shim/cache"
	"github.com/solstice-ci/solstice/shim/forgejo"
)

const cacheWorkflow = `name: cache
on: push
jobs:
  c:
    runs-on: solstice-test
    steps:
      - uses: actions/checkout@v4
      - id: c
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ hashFiles('lock.txt') }}
          restore-keys: deps-
      - run: |
          echo "hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }}"
          if [ -f deps/content ]; then echo "restored: $(cat deps/content)"; else echo "restored: none"; fi
          mkdir -p deps && cat lock.txt > deps/content
`

// startCacheService runs "solstice cache serve" on the Gitea host (its
// network namespace), where guests reach it through the egress
// allow-list as they would an operator's internal service; it returns
// the shim's access to it.
func startCacheService(t *testing.T, g *Gitea) *forgejo.CacheAccess {
	key := bytes.Repeat([]byte{0x5a}, 32)
	addr := net.JoinHostPort(g.Addr, "8088")
	url := "http://" + addr
	cmd := exec.Command("ip", "netns", "exec", g.netns, filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "cache", "serve",
		"--cache-dir", t.TempDir(), "--cache-listen", addr, "--cache-url", url, "--cache-size-mib", "256")
	cmd.Env = append(os.Environ(), "SOLSTICE_CACHE_KEY="+hex.EncodeToString(key))
	logPath := filepath.Join(t.TempDir(), "cache.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if data, _ := os.ReadFile(logPath); t.Failed() {
			t.Logf("cache service log:\n%s", data)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache service does not listen on %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m, err := cache.NewMinter(key)
	if err != nil {
		t.Fatal(err)
	}
	return &forgejo.CacheAccess{URL: url, Minter: m, TTL: time.Hour}
}

// TestGiteaCache is issue #19's cache flow on real Gitea: a cache saved
// in run 1 is restored by its exact key in run 2 and by a restore-keys
// prefix in run 3; another repository's run, alongside run 2, sees none
// of it. Each run starts from one push (see PushFiles).
func TestGiteaCache(t *testing.T) {
	start := time.Now()
	g := StartGitea(t)
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	syncLabels(t, n)
	ca := startCacheService(t, g)
	s := startShim(t, g, n, "e2e-cache", func(c *forgejo.Config) { c.Cache = ca })
	s.waitRegistered(t)
	g.CreateRepo("demo")
	g.CreateRepo("other")
	withWorkflow := map[string]string{"lock.txt": "A\n", ".gitea/workflows/cache.yml": cacheWorkflow}

	g.PushFiles("demo", withWorkflow)
	log1 := onlyJobLog(t, g, "demo", 1)
	g.PushFile("demo", "unrelated.txt", "x\n")
	g.PushFiles("other", withWorkflow)
	log2 := onlyJobLog(t, g, "demo", 2)
	log4 := onlyJobLog(t, g, "other", 1)
	g.UpdateFile("demo", "lock.txt", "B\n")
	log3 := onlyJobLog(t, g, "demo", 3)

	keyA := cacheKeyIn(t, log1, `Cache saved with key: (deps-[0-9a-f]+)`)
	for _, c := range []struct {
		name, log string
		want      []string
	}{
		{"run 1 (miss, save)", log1, []string{"hit= matched=", "restored: none", "Cache saved with key: " + keyA}},
		{"run 2 (exact key)", log2, []string{"hit=true matched=" + keyA, "restored: A"}},
		{"run 3 (restore-keys)", log3, []string{"hit=false matched=" + keyA, "restored: A", "Cache saved with key: deps-"}},
		{"other repository", log4, []string{"hit= matched=", "restored: none", "Cache saved with key: " + keyA}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.log, w) {
				t.Errorf("%s: the log lacks %q:\n%s", c.name, w, c.log)
			}
		}
	}
	if strings.Contains(log2, "Post job cleanup: save cache") {
		t.Error("run 2 saved again after an exact hit")
	}
	t.Logf("TestGiteaCache took %s", time.Since(start).Round(time.Second))
}

// onlyJobLog waits for the repository's n-th job, which must be the
// newest, have succeeded, and be the only one of its run, and returns its
// log.
func onlyJobLog(t *testing.T, g *Gitea, repo string, n int) string {
	t.Helper()
	jobs := g.WaitJobsDone(repo, n, 15*time.Minute)
	if len(jobs) != n {
		t.Fatalf("%s has %d jobs, want %d (a push started more than one run): %+v", repo, len(jobs), n, jobs)
	}
	var last GiteaJob
	for _, j := range jobs {
		if j.ID > last.ID {
			last = j
		}
	}
	log := g.JobLog(repo, last.ID)
	if last.Conclusion != "success" {
		t.Fatalf("%s job %d: %s\n%s", repo, n, last.Conclusion, log)
	}
	return log
}

func cacheKeyIn(t *testing.T, log, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the log lacks %q:\n%s", pattern, log)
	}
	return m[1]
}
