//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/shim/github"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/nomadvar"
)

// ghScope is the repository the fake GitHub's runners are registered for.
const ghScope = "octo/app"

// ghEnv is the fake GitHub, a Nomad agent with the solstice-vm plugin and
// the test image, and a git server on a test host for checkouts.
type ghEnv struct {
	fake   *githubfake.Server
	n      *Nomad
	url    string // the GitHub URL runners register with
	store  *github.Store
	server string // the git server's root, as github.server_url
	sha    string
}

func startGitHubEnv(t *testing.T, opts githubfake.Options) *ghEnv {
	t.Helper()
	return startGitHubEnvWith(t, opts, pluginOpts{})
}

// startGitHubEnvWith is startGitHubEnv with a plugin config of its own.
func startGitHubEnvWith(t *testing.T, opts githubfake.Options, plugin pluginOpts) *ghEnv {
	t.Helper()
	n := StartNomad(t, WithPlugin(pluginConfig(t, plugin)))
	syncLabels(t, n)
	e := newGitHubEnv(t, opts, n)
	repoURL, sha := gitServer(t, NewTestHost(t), map[string]string{"README.md": "hello from the repository\n"})
	e.sha, e.server = sha, strings.TrimSuffix(repoURL, "/repo.git")
	return e
}

// newGitHubEnv starts a fake GitHub whose runners keep their credentials
// in n's Variables.
func newGitHubEnv(t *testing.T, opts githubfake.Options, n *Nomad) *ghEnv {
	t.Helper()
	fake := githubfake.New(opts)
	t.Cleanup(fake.Close)
	e := &ghEnv{fake: fake, n: n, url: fake.GitHubURL(ghScope)}
	scope, err := github.ScopeOf(e.url)
	if err != nil {
		t.Fatal(err)
	}
	e.store = &github.Store{Vars: nomadvar.Store{API: n.API}, Scope: scope}
	return e
}

// register registers n runners labelled solstice-test, as config.sh does.
func (e *ghEnv) register(t *testing.T, n int, version string) {
	t.Helper()
	_, err := github.Register(testContext(t, time.Minute), e.store, github.Registration{
		RegisterOptions: protocol.RegisterOptions{
			URL: e.url, Token: e.fake.RegistrationToken(ghScope), Name: "e2e",
			Labels: []string{"solstice-test"}, RunnerVersion: version,
		},
		Runners: n,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ghShim is a shim running in the test process.
type ghShim struct {
	metrics *github.Metrics
	log     *syncBuffer
	stop    func()
}

// runShim runs the shim for every registered runner until the test ends.
func (e *ghEnv) runShim(t *testing.T, cfg github.Config) *ghShim {
	t.Helper()
	s := &ghShim{metrics: github.NewMetrics(), log: &syncBuffer{}}
	log := hclog.New(&hclog.LoggerOptions{Name: "github", Level: hclog.Debug, Output: io.MultiWriter(s.log, testWriter{t})})
	cfg.URL, cfg.Store, cfg.Log, cfg.Metrics = e.url, e.store, log, s.metrics
	cfg.Nomad = &nomad.Client{API: e.n.API, Log: log.Named("nomad")}
	if cfg.Info.Version == "" {
		cfg.Info.Version = protocol.DefaultRunnerVersion
	}
	sh, err := github.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sh.Run(ctx) }()
	s.stop = func() { cancel(); <-done }
	t.Cleanup(s.stop)
	return s
}

// github is the github context of a job in the test repository.
func (e *ghEnv) github() map[string]any {
	return map[string]any{"server_url": e.server, "repository": "repo", "sha": e.sha, "ref": "refs/heads/main", "workflow": "ci"}
}

func (e *ghEnv) wait(t *testing.T, j *githubfake.Job, limit time.Duration) *githubfake.Result {
	t.Helper()
	res, err := j.Wait(testContext(t, limit))
	if err != nil {
		t.Fatalf("job %s: %v (so far: %+v)", j.ID(), err, j.Snapshot())
	}
	return res
}

// assertNothingRejected fails the test if the fake refused any request:
// every call the shim made was well-formed.
func (e *ghEnv) assertNothingRejected(t *testing.T) {
	t.Helper()
	for _, r := range e.fake.Rejections() {
		if strings.HasPrefix(r.Reason, "injected") {
			continue // the test asked for it
		}
		t.Errorf("the fake GitHub refused a request: %+v", r)
	}
}

// stepsOf is "name=conclusion" of each step GitHub shows, in order.
func stepsOf(res *githubfake.Result) []string {
	var out []string
	for _, s := range res.StepResults {
		out = append(out, s.Name+"="+s.Conclusion)
	}
	return out
}

func stepLog(t *testing.T, res *githubfake.Result, name string) string {
	t.Helper()
	for _, s := range res.StepResults {
		if s.Name == name {
			return res.StepLogs[s.ExternalID].Text
		}
	}
	t.Fatalf("no step %q among %v", name, stepsOf(res))
	return ""
}

const ghSecret = "gh-s3cr3t-Value-2718"

// fullJob is checkout, three run steps (one failing, allowed to) and an
// output, long enough for several lock renewals.
func (e *ghEnv) fullJob() githubfake.JobSpec {
	return githubfake.JobSpec{
		Name: "build", Labels: []string{"self-hosted", "solstice-test"},
		ContextData: map[string]any{"github": e.github()},
		Secrets:     map[string]string{"MY_SECRET": ghSecret},
		Outputs:     map[string]string{"probe": "${{ steps.p.outputs.value }}"},
		Steps: []githubfake.Step{
			{Uses: "actions/checkout@v4"},
			{ContextName: "p", DisplayName: "Look around", Run: "test -f README.md && echo \"checked out $(git rev-parse HEAD)\"\necho \"value=42\" >> \"$GITHUB_OUTPUT\"\necho \"secret is ${{ secrets.MY_SECRET }}\"\necho \"token is ${{ secrets.GITHUB_TOKEN }}\"\ntest \"${{ secrets.GITHUB_TOKEN }}\" = \"${{ github.token }}\" && echo \"github.token agrees\""},
			{DisplayName: "Allowed to fail", Run: "echo about to fail\nexit 7", ContinueOnError: true},
			{DisplayName: "Still runs", Run: "for i in 1 2 3 4 5 6 7 8 9 10; do echo \"tick $i\"; sleep 2; done"},
		},
	}
}

// TestGitHubJobsInVMs: two runners take four jobs, two at a time, while
// GitHub forces a re-authentication; a full job succeeds with the right
// steps, logs and outputs, a failing job fails with its exit code, locks
// are renewed at the configured cadence and secrets stay out of Nomad
// and the logs.
func TestGitHubJobsInVMs(t *testing.T) {
	alongside(t)
	e := startGitHubEnv(t, githubfake.Options{LockDuration: 10 * time.Second})
	e.register(t, 2, protocol.DefaultRunnerVersion)
	renew := 3 * time.Second
	e.runShim(t, github.Config{Timing: github.Timing{Renew: renew}})
	e.migrateBroker(t, 2)
	full := e.fake.QueueJob(e.fullJob())
	failing := e.fake.QueueJob(githubfake.JobSpec{
		Name: "fails", Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": e.github()},
		Defaults: map[string]string{"shell": "sh", "working-directory": "/tmp"},
		Steps:    []githubfake.Step{{DisplayName: "Breaks", Run: "echo breaking in $(pwd)\nexit 3"}, {DisplayName: "Never", Run: "echo never"}},
	})
	var quick []*githubfake.Job
	for i := range 2 {
		quick = append(quick, e.fake.QueueJob(githubfake.JobSpec{
			Name: fmt.Sprintf("quick%d", i), Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": e.github()},
			Steps: []githubfake.Step{{Run: "echo quick; sleep 3"}},
		}))
	}
	e.forceReauthMidJob(t, full)
	res := e.wait(t, full, 10*time.Minute)
	e.assertFullJob(t, res, full.GitHubToken())
	assertRenewals(t, res, renew)
	fres := e.wait(t, failing, 5*time.Minute)
	if fres.Conclusion != "failed" || strings.Join(stepsOf(fres), " ") != "Set up job=succeeded Breaks=failed Never=skipped Complete job=succeeded" {
		t.Errorf("the failing job: %s %v", fres.Conclusion, stepsOf(fres))
	}
	if log := stepLog(t, fres, "Breaks"); !strings.Contains(log, "breaking in /tmp") || !strings.Contains(log, "exit code 3") {
		t.Errorf("the failed step's log lacks its output or exit code:\n%s", log)
	}
	all := []*githubfake.Result{res, fres}
	for _, j := range quick {
		all = append(all, e.wait(t, j, 5*time.Minute))
	}
	assertTwoAtATime(t, all)
	assertNoSecretsInNomad(t, e.n, ghSecret)
	e.assertNothingRejected(t)
	e.assertCleanedUp(t)
}

// migrateBroker waits for the runners' sessions, then has GitHub move
// them to another broker URL (BrokerMigration), where the jobs arrive.
func (e *ghEnv) migrateBroker(t *testing.T, sessions int) {
	t.Helper()
	waitFor(t, time.Minute, "the runners' broker sessions", func() bool { return e.fake.Counters().SessionsCreated >= sessions })
	e.fake.TriggerBrokerMigration()
}

// assertCleanedUp checks the shim forgot every job it completed: no job
// record, no secrets, nothing in flight.
func (e *ghEnv) assertCleanedUp(t *testing.T) {
	t.Helper()
	c := &nomad.Client{API: e.n.API, Log: hclog.NewNullLogger()}
	waitFor(t, 30*time.Second, "the completed jobs to be cleaned up", func() bool {
		recs, err1 := e.store.Jobs(context.Background())
		jobs, err2 := c.InFlight(context.Background(), github.ForgeName, e.url)
		return err1 == nil && err2 == nil && len(recs) == 0 && len(jobs) == 0
	})
}

// forceReauthMidJob makes GitHub refuse the runners' access token once
// while the job runs.
func (e *ghEnv) forceReauthMidJob(t *testing.T, j *githubfake.Job) {
	t.Helper()
	select {
	case <-j.Acquired():
	case <-time.After(5 * time.Minute):
		t.Fatal("the job was never acquired")
	}
	before := e.fake.Counters()
	e.fake.ForceUnauthorized(1)
	deadline := time.Now().Add(2 * time.Minute)
	for e.fake.Counters().TokensIssued == before.TokensIssued {
		if time.Now().After(deadline) {
			t.Fatalf("no re-authentication after a 401: %+v", e.fake.Counters())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("re-authenticated after a forced 401: %+v", e.fake.Counters())
}

func (e *ghEnv) assertFullJob(t *testing.T, res *githubfake.Result, token string) {
	t.Helper()
	want := "Set up job=succeeded Run actions/checkout@v4=succeeded Look around=succeeded Allowed to fail=succeeded Still runs=succeeded Complete job=succeeded"
	if res.Conclusion != "succeeded" || strings.Join(stepsOf(res), " ") != want {
		t.Errorf("the full job: %s %v, want succeeded %s", res.Conclusion, stepsOf(res), want)
	}
	if res.Outputs["probe"].Value != "42" {
		t.Errorf("outputs = %+v, want probe=42", res.Outputs)
	}
	look := stepLog(t, res, "Look around")
	if !strings.Contains(look, "checked out "+e.sha) || !strings.Contains(look, "secret is ***") ||
		!strings.Contains(look, "token is ***") || !strings.Contains(look, "github.token agrees") {
		t.Errorf("the Look around log:\n%s", look)
	}
	if log := stepLog(t, res, "Allowed to fail"); !strings.Contains(log, "about to fail") || !strings.Contains(log, "exit code 7") {
		t.Errorf("the Allowed to fail log:\n%s", log)
	}
	if log := stepLog(t, res, "Still runs"); strings.Count(log, "Z tick ") != 10 {
		t.Errorf("the Still runs log:\n%s", log)
	}
	if !strings.Contains(stepLog(t, res, "Set up job"), "Placed on Nomad node") {
		t.Errorf("the set-up log:\n%s", stepLog(t, res, "Set up job"))
	}
	var texts []string
	for _, l := range res.StepLogs {
		texts = append(texts, l.Text)
	}
	for _, f := range res.Feed {
		texts = append(texts, strings.Join(f.Lines, "\n"))
	}
	if res.JobLog != nil {
		texts = append(texts, res.JobLog.Text)
	}
	if all := strings.Join(texts, "\n"); strings.Contains(all, ghSecret) || strings.Contains(all, token) {
		t.Error("a secret's value or the job token reached a log or the live feed")
	}
	if len(res.Feed) == 0 || res.JobLog == nil {
		t.Errorf("live feed batches: %d, job log: %v", len(res.Feed), res.JobLog != nil)
	}
}

// assertRenewals checks the lock was renewed every interval (with slack
// for a loaded machine) across a job longer than three lock intervals.
func assertRenewals(t *testing.T, res *githubfake.Result, every time.Duration) {
	t.Helper()
	life := res.CompletedAt.Sub(res.AcquiredAt)
	if life < 30*time.Second {
		t.Errorf("the job lasted %s, not longer than three 10 s lock intervals", life)
	}
	prev := res.AcquiredAt
	for _, r := range append(res.Renewals, res.CompletedAt) {
		if gap := r.Sub(prev); gap > every+3*time.Second {
			t.Errorf("%s between renewals, want about %s", gap.Round(time.Millisecond), every)
		}
		prev = r
	}
	if min := int(life/every) - 1; len(res.Renewals) < min {
		t.Errorf("%d renewals over %s, want at least %d", len(res.Renewals), life, min)
	}
	t.Logf("%d renewals over %s", len(res.Renewals), life.Round(time.Second))
}

// assertTwoAtATime checks that never more than two jobs held a runner and
// that two did at some point.
func assertTwoAtATime(t *testing.T, all []*githubfake.Result) {
	t.Helper()
	most := 0
	for _, a := range all {
		n := 0
		for _, b := range all {
			if !b.AcquiredAt.After(a.AcquiredAt) && b.CompletedAt.After(a.AcquiredAt) {
				n++
			}
		}
		most = max(most, n)
	}
	if most != 2 {
		t.Errorf("at most %d jobs ran at once, want exactly 2", most)
	}
}

// TestGitHubCancel: a JobCancellation mid-job stops the VM within the
// task's kill_timeout and the job completes as canceled. The runner is
// registered from a JIT config.
func TestGitHubCancel(t *testing.T) {
	e := startGitHubEnv(t, githubfake.Options{})
	if _, err := github.RegisterJIT(testContext(t, time.Minute), e.store, e.fake.JITConfig("e2e-jit", []string{"solstice-test"}), nil); err != nil {
		t.Fatal(err)
	}
	e.runShim(t, github.Config{Label: "solstice-test"})
	j := e.fake.QueueJob(githubfake.JobSpec{
		Name: "long", Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": e.github()},
		Steps: []githubfake.Step{{DisplayName: "Forever", Run: "echo started\nsleep 600"}, {DisplayName: "Cleanup", If: "always()", Run: "echo cleanup ran"}},
	})
	jobID := e.waitStepRunning(t, j, "Forever")
	time.Sleep(5 * time.Second)
	cancelled := time.Now()
	e.fake.Cancel(j)
	a := e.n.WaitAlloc(jobID, 2*time.Minute, "stopped", func(a *api.Allocation) bool { return a.ClientStatus == "complete" || a.ClientStatus == "failed" })
	stopped := time.Since(cancelled)
	t.Logf("the VM stopped %s after the cancellation (%s)", stopped.Round(time.Second), a.ClientStatus)
	if stopped > 60*time.Second {
		t.Errorf("the VM took %s to stop, longer than the kill_timeout of 60s", stopped)
	}
	res := e.wait(t, j, 3*time.Minute)
	if res.Conclusion != "canceled" || !res.CancelRequested {
		t.Errorf("conclusion %q, steps %v", res.Conclusion, stepsOf(res))
	}
	if log := stepLog(t, res, "Forever"); !strings.Contains(log, "started") {
		t.Errorf("the cancelled step's log:\n%s", log)
	}
	waitFor(t, time.Minute, "the JIT runner to retire after its one job", func() bool {
		names, err := e.store.Runners(context.Background())
		return err == nil && len(names) == 0
	})
	e.assertNothingRejected(t)
}

// waitStepRunning waits until GitHub shows the step in progress and
// returns the Nomad job running it.
func (e *ghEnv) waitStepRunning(t *testing.T, j *githubfake.Job, name string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		for _, s := range j.Snapshot().Steps {
			if s.Name == name && s.Status == 3 {
				return e.runningJob(t)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("step %q never ran: %+v", name, j.Snapshot().Steps)
	return ""
}

// runningJob is the one dispatched Nomad job.
func (e *ghEnv) runningJob(t *testing.T) string {
	t.Helper()
	stubs, _, err := e.n.API.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if s.ParentID != "" {
			return s.ID
		}
	}
	t.Fatal("no dispatched job")
	return ""
}

// TestGitHubRunnerVersionTooOld: GitHub refuses the runner version; the
// shim says so clearly, counts it and does not poll in a tight loop.
func TestGitHubRunnerVersionTooOld(t *testing.T) {
	n := StartNomad(t, WithRawExec())
	syncLabels(t, n)
	e := newGitHubEnv(t, githubfake.Options{MinRunnerVersion: "2.330.0"}, n)
	fake := e.fake
	e.register(t, 1, "2.330.0")
	sh := e.runShim(t, github.Config{Info: protocol.RunnerInfo{Version: "2.320.0"}, Timing: github.Timing{VersionTooOld: 3 * time.Second}})
	time.Sleep(10 * time.Second)
	polls := fake.Counters().Polls
	sh.stop()
	if polls > 5 || polls < 2 {
		t.Errorf("%d polls in 10 s while the version is refused, want a few (one per 3 s)", polls)
	}
	if !strings.Contains(sh.log.String(), "GitHub refuses this runner version") {
		t.Errorf("no clear log line about the refused version:\n%s", sh.log.String())
	}
	rec := httptest.NewRecorder()
	sh.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `solstice_github_broker_errors_total{kind="RunnerVersionTooOld"}`) {
		t.Errorf("no metric for the refused version:\n%s", rec.Body.String())
	}
	e.assertRemove(t)
}

// assertRemove unregisters every runner, as `solstice github remove` does:
// GitHub and Nomad both forget them.
func (e *ghEnv) assertRemove(t *testing.T) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	removed, err := github.Remove(ctx, e.store, protocol.RegisterOptions{URL: e.url, Token: e.fake.RegistrationToken(ghScope)}, nil)
	if err != nil || len(removed) != 1 {
		t.Fatalf("remove: %v %v", removed, err)
	}
	left, err := e.store.Runners(ctx)
	if len(e.fake.Runners()) != 0 || len(left) != 0 || err != nil {
		t.Errorf("after remove, GitHub has %v and Nomad %v (%v)", e.fake.Runners(), left, err)
	}
}

// startGitHubShim starts `solstice github run` as its own process.
func (e *ghEnv) startGitHubShim(t *testing.T) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "github", "run", "--url", e.url, "--listen", "")
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+e.n.Addr, "SOLSTICE_LOG_LEVEL=debug")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

// TestGitHubShimKilledMidJob: the shim process is killed (SIGKILL) while
// a step prints; a new one resumes the job from Nomad, and GitHub gets the
// job completed once with every line of every step log exactly once.
func TestGitHubShimKilledMidJob(t *testing.T) {
	e := startGitHubEnv(t, githubfake.Options{SessionIdleTimeout: 10 * time.Second})
	e.register(t, 1, protocol.DefaultRunnerVersion)
	first, out1 := e.startGitHubShim(t)
	j := e.fake.QueueJob(githubfake.JobSpec{
		Name: "ticks", Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": e.github()},
		Steps: []githubfake.Step{
			{DisplayName: "Before", Run: "echo before"},
			{DisplayName: "Ticks", Run: "for i in $(seq 1 30); do echo \"tick $i\"; sleep 1; done"},
			{DisplayName: "After", Run: "echo after"},
		},
	})
	e.waitStepRunning(t, j, "Ticks")
	time.Sleep(5 * time.Second)
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	t.Logf("killed the first shim:\n%s", tail(out1.String(), 15))
	_, out2 := e.startGitHubShim(t)
	res, err := j.Wait(testContext(t, 5*time.Minute))
	if err != nil {
		t.Fatalf("%v\nsecond shim:\n%s", err, out2.String())
	}
	if !strings.Contains(out2.String(), "resuming a job") {
		t.Errorf("the second shim did not say it resumed the job:\n%s", out2.String())
	}
	if res.Conclusion != "succeeded" || strings.Join(stepsOf(res), " ") != "Set up job=succeeded Before=succeeded Ticks=succeeded After=succeeded Complete job=succeeded" {
		t.Errorf("job: %s %v", res.Conclusion, stepsOf(res))
	}
	log := stepLog(t, res, "Ticks")
	for i := 1; i <= 30; i++ {
		if n := strings.Count(log, fmt.Sprintf("Z tick %d\n", i)); n != 1 {
			t.Errorf("tick %d is in the step log %d times", i, n)
		}
	}
	if n := strings.Count(stepLog(t, res, "Before"), "Z before\n"); n != 1 {
		t.Errorf("the Before log has its line %d times", n)
	}
	e.assertNothingRejected(t)
}

// TestGitHubRegisterCLI runs the solstice github register lines of
// docs/github.md and docs/getting-started.md as a reader types them (read
// from the docs) against the fake GitHub, served over https, and a real
// agent's Variables. Only the host and the token are substituted: the
// fake serves GHES's API (https://HOST/api/v3) on a loopback port whose
// certificate the CLI trusts through SSL_CERT_FILE, so the GHES line runs
// as written; the github.com lines run against it too, with their host
// replaced (github.com's API host, api.github.com, is TestAPIURL's). A
// JIT config never talks to GitHub, so that line runs with
// https://github.com as written.
func TestGitHubRegisterCLI(t *testing.T) {
	alongside(t)
	n := StartNomad(t, WithRawExec())
	fake := githubfake.New(githubfake.Options{TLS: true})
	t.Cleanup(fake.Close)
	const repo = "OWNER/REPO" // the docs' placeholder is a fine repository name
	certs := filepath.Join(t.TempDir(), "fake-github.pem")
	if err := os.WriteFile(certs, fake.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	register := func(t *testing.T, file, prefix string, oldNew ...string) docRun {
		t.Helper()
		words := substitute(t, docCommand(t, file, prefix), oldNew...)
		r := runDocCommand(t, 2*time.Minute, words, "NOMAD_ADDR="+n.Addr, "SSL_CERT_FILE="+certs)
		if r.code != 0 {
			t.Fatalf("%s: exit %d:\n%s", r.line, r.code, r.out)
		}
		return r
	}
	token := func() string { return fake.RegistrationToken(repo) }

	t.Run("GHES", func(t *testing.T) {
		r := register(t, "docs/github.md", "solstice github register --url https://ghes.example.org/",
			"https://ghes.example.org", fake.URL(), "REGISTRATION_TOKEN", token())
		checkRegistered(t, n, fake, repo, r, []string{"omnios"}, "omnios-r151056")
	})
	t.Run("github.com, four runners", func(t *testing.T) {
		r := register(t, "docs/github.md", "solstice github register --url https://github.com/OWNER/REPO --token",
			"https://github.com", fake.URL(), "REGISTRATION_TOKEN", token())
		checkRegistered(t, n, fake, repo, r, []string{"omnios-1", "omnios-2", "omnios-3", "omnios-4"}, "omnios-r151056")
	})
	t.Run("getting started, two runners", func(t *testing.T) {
		r := register(t, "docs/getting-started.md", "solstice github register --url https://github.com/",
			"https://github.com", fake.URL(), "REG_TOKEN", token())
		checkRegistered(t, n, fake, repo, r, []string{"solstice-1", "solstice-2"}, "omnios-r151056")
	})
	t.Run("JIT config from a file", func(t *testing.T) {
		// The reader saved generate-jitconfig's answer as jit-config.txt.
		jit := filepath.Join(t.TempDir(), "jit-config.txt")
		if err := os.WriteFile(jit, []byte(fake.JITConfig("jit-omnios", nil)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := register(t, "docs/github.md", "solstice github register --url https://github.com/OWNER/REPO --jit-config",
			"@jit-config.txt", "@"+jit)
		if !regexp.MustCompile(`(?m)^stored JIT runner "jit-omnios" \(id \d+\) for https://github.com/OWNER/REPO$`).MatchString(r.out) {
			t.Fatalf("%s printed:\n%s", r.line, r.out)
		}
		scope, err := github.ScopeOf("https://github.com/OWNER/REPO")
		if err != nil {
			t.Fatal(err)
		}
		store := &github.Store{Vars: nomadvar.Store{API: n.API}, Scope: scope}
		creds, err := store.LoadRunner(testContext(t, time.Minute), "jit-omnios")
		if err != nil || creds == nil || strings.Join(creds.Labels, ",") != "omnios-r151056" || creds.PrivateKeyPEM == "" {
			t.Fatalf("the Nomad Variable of the JIT runner: %+v (%v); want its key and the label omnios-r151056", creds, err)
		}
	})
}

// checkRegistered checks what a reader sees after solstice github
// register: a line per runner, the runners on GitHub's list with the
// label, and each runner's id and private key in its Nomad Variable
// solstice/runners/github/<host>/<owner>/<repo>/<name>.
func checkRegistered(t *testing.T, n *Nomad, fake *githubfake.Server, repo string, r docRun, names []string, label string) {
	t.Helper()
	onGitHub := githubRunners(t, fake, repo)
	repoURL := fake.GitHubURL(repo)
	scope, err := github.ScopeOf(repoURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		line := regexp.MustCompile(`(?m)^registered runner "` + regexp.QuoteMeta(name) + `" \(id (\d+)\) with ` + regexp.QuoteMeta(repoURL) + `, labels (\S+)$`).FindStringSubmatch(r.out)
		if line == nil || !slices.Contains(strings.Split(line[2], ","), label) {
			t.Fatalf("%s printed no line for runner %q with label %s:\n%s", r.line, name, label, r.out)
		}
		gh, ok := onGitHub[name]
		if !ok || fmt.Sprint(gh.ID) != line[1] || !slices.Contains(gh.Labels, label) {
			t.Fatalf("GitHub lists runner %q as %+v (listed: %v); want id %s with label %s", name, gh, onGitHub, line[1], label)
		}
		path := "solstice/runners/github/" + scope + "/" + name
		v, _, err := n.API.Variables().Read(path, nil)
		if err != nil {
			t.Fatalf("the runner's Nomad Variable %s: %v", path, err)
		}
		var creds protocol.Credentials
		if err := json.Unmarshal([]byte(firstItem(v.Items)), &creds); err != nil || fmt.Sprint(creds.RunnerID) != line[1] || creds.ClientID == "" || !strings.Contains(creds.PrivateKeyPEM, "PRIVATE KEY") {
			t.Fatalf("the Nomad Variable %s holds %q (%v); want runner id %s, its client id and private key", path, firstItem(v.Items), err, line[1])
		}
	}
	t.Logf("%s:\n%s", r.line, r.out)
}

func firstItem(items map[string]string) string {
	for _, v := range items {
		return v
	}
	return ""
}

// ghRunner is a runner as GitHub's REST API lists it.
type ghRunner struct {
	ID     int64
	Labels []string
}

// githubRunners lists the runners GitHub has for the repository, as its
// REST API (GET /repos/OWNER/REPO/actions/runners) shows them.
func githubRunners(t *testing.T, fake *githubfake.Server, repo string) map[string]ghRunner {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t, time.Minute), http.MethodGet, fake.APIURL()+"/repos/"+repo+"/actions/runners", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "RemoteAuth "+fake.RegistrationToken(repo))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(fake.CertificatePEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Runners []struct {
			ID     int64  `json:"id"`
			Name   string `json:"name"`
			Labels []struct {
				Name string `json:"name"`
			} `json:"labels"`
		} `json:"runners"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list GitHub's runners: %s (%v)", resp.Status, err)
	}
	out := map[string]ghRunner{}
	for _, r := range list.Runners {
		gr := ghRunner{ID: r.ID}
		for _, l := range r.Labels {
			gr.Labels = append(gr.Labels, l.Name)
		}
		out[r.Name] = gr
	}
	return out
}
