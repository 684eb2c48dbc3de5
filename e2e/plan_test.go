//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// gitServer serves a bare repository over git's smart HTTP protocol
// (git-http-backend, as forges do) from a test host, and returns its clone
// URL and head commit.
func gitServer(t *testing.T, h *TestHost, files map[string]string) (string, string) {
	work := t.TempDir()
	git := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@test", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	src := filepath.Join(work, "src")
	git(work, "init", "-q", "-b", "main", src)
	for name, body := range files {
		os.WriteFile(filepath.Join(src, name), []byte(body), 0o644)
	}
	git(src, "add", ".")
	git(src, "commit", "-q", "-m", "e2e")
	sha := git(src, "rev-parse", "HEAD")
	bare := filepath.Join(work, "srv", "repo.git")
	git(work, "clone", "-q", "--bare", src, bare)
	l := h.Listen(8080)
	go http.Serve(l, &cgi.Handler{
		Path: "/usr/lib/git-core/git-http-backend",
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Join(work, "srv"), "GIT_HTTP_EXPORT_ALL=1"},
	})
	return fmt.Sprintf("http://%s:8080/repo.git", h.IP), sha
}

const (
	planSecret  = "s3cr3t-Value-9431"
	planToken   = "tok3n-Value-5127"
	planAddMask = "hunter2-masked"
)

// demoPlan exercises checkout, env files, outputs, masks, a step timeout,
// continue-on-error, a failing step and an if: failure() step.
func demoPlan(url, sha string) *contract.Plan {
	return &contract.Plan{
		Version:  contract.PlanVersion,
		Job:      contract.Job{ID: "e2e", Name: "e2e job", Workflow: "e2e"},
		Secrets:  []string{"GITHUB_TOKEN", "MY_SECRET"},
		Outputs:  map[string]string{"answer": "${{ steps.out.outputs.answer }}"},
		Checkout: &contract.Checkout{URL: url, SHA: sha, Ref: "refs/heads/main"},
		Contexts: map[string]json.RawMessage{"github": json.RawMessage(`{"repository":"e2e/repo","server_url":"http://example.invalid"}`)},
		Steps: []contract.Step{
			{Name: "Checkout", Uses: "actions/checkout@v4", With: contract.Strings{"token": "${{ secrets.GITHUB_TOKEN }}"}},
			// The masked value is made at run time, as a token fetched by a
			// step would be: the script text (which the log shows) never
			// holds it.
			{Name: "Env and mask", Run: "echo FOO=bar >> \"$GITHUB_ENV\"\nV=\"hunter2-$(echo masked)\"\necho \"::add-mask::$V\"\necho \"the password is $V\""},
			{ID: "out", Name: "Output", Run: "echo \"FOO=$FOO\"\ncat README\necho answer=42 >> \"$GITHUB_OUTPUT\""},
			{Name: "Secret", Env: contract.Strings{"S": "${{ secrets.MY_SECRET }}"}, Run: "(sleep 20 &)\nps -eo args > /tmp/ps.txt\necho \"ps hits: $(grep -c -- \"$S\" /tmp/ps.txt)\"\necho \"the secret is $S\""},
			{Name: "Slow", Run: "sleep 60", TimeoutMinutes: "0.05", ContinueOnError: "true"},
			{Name: "Allowed to fail", Run: "echo about to fail\nexit 3", ContinueOnError: "true"},
			{Name: "Fails", Run: "exit 4"},
			{Name: "Never", Run: "echo should not run"},
			{Name: "On failure", If: "failure()", Run: "echo \"cleanup, answer=${{ steps.out.outputs.answer }}\""},
		},
	}
}

type stepWant struct {
	name, outcome, conclusion string
	exit                      int // -1: no process exit code
}

var demoWant = []stepWant{
	{"Checkout", "success", "success", -1},
	{"Env and mask", "success", "success", 0},
	{"Output", "success", "success", 0},
	{"Secret", "success", "success", 0},
	{"Slow", "failure", "success", -2}, // timed out: whatever the killed shell reports
	{"Allowed to fail", "failure", "success", 3},
	{"Fails", "failure", "failure", 4},
	{"Never", "skipped", "skipped", -1},
	{"On failure", "success", "success", 0},
}

// TestJobPlanEndToEnd dispatches a plan through the label's parent job and
// checks the events file, the alloc logs, the exit code and that the
// secrets went nowhere they should not.
func TestJobPlanEndToEnd(t *testing.T) {
	host := NewTestHost(t)
	url, sha := gitServer(t, host, map[string]string{"README": "hello from the test host\n"})
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	ctx := testContext(t, 10*time.Minute)
	d, job := dispatchPlan(t, n, demoPlan(url, sha), map[string]string{"MY_SECRET": planSecret, "GITHUB_TOKEN": planToken})
	alloc := n.WaitAlloc(job.ID, 8*time.Minute, "finished", func(a *api.Allocation) bool {
		st := a.TaskStates[contract.TaskName]
		return st != nil && st.State == "dead"
	})
	st, err := d.Status(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != contract.ExitJobFailed {
		t.Errorf("task exit code = %d (%s), want %d: the job failed", st.ExitCode, st.Problem, contract.ExitJobFailed)
	}
	evs := readEvents(t, n, alloc)
	defer dumpEvents(t, evs)
	checkEventSequence(t, evs)
	checkLogs(t, n.Logs(alloc, contract.TaskName, "stdout"))
	checkNoSecrets(t, n, job.ID, alloc, evs)
	checkAgentFromDisk(t, alloc)
	if err := d.Finish(ctx, job); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := n.API.Variables().Peek(contract.SecretsPrefix+job.SecretsKey, nil); v != nil {
		t.Error("the job's secrets Variable is still there after Finish")
	}
}

// checkAgentFromDisk: the guest copied its agent from the shared
// read-only agent disk, not from an upload over SSH, and the task's
// "Agent started" event says so.
func checkAgentFromDisk(t *testing.T, alloc *api.Allocation) {
	t.Helper()
	for _, e := range alloc.TaskStates[contract.TaskName].Events {
		if e.Type == api.TaskDriverMessage && e.DriverMessage == "Agent started" {
			if got := e.Details["detail"]; got != "the guest agent was copied by the guest from the read-only agent disk" {
				t.Errorf("Agent started: %q, want the agent copied from its disk", got)
			}
			return
		}
	}
	t.Error("the task has no Agent started event")
}

func readEvents(t *testing.T, n *Nomad, alloc *api.Allocation) []contract.Event {
	rc, err := n.API.AllocFS().Cat(alloc, contract.EventsPath(contract.TaskName), nil)
	if err != nil {
		t.Fatalf("read events.jsonl: %v", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	var evs []contract.Event
	for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		ev, err := contract.DecodeEvent([]byte(line))
		if err != nil {
			t.Fatalf("events.jsonl line %d: %v", i+1, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func checkEventSequence(t *testing.T, evs []contract.Event) {
	t.Helper()
	var finished []contract.Event
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: want 1, 2, 3… with no gaps", i, ev.Seq)
		}
		if ev.Type == contract.TypeStepFinished {
			finished = append(finished, ev)
		}
	}
	if len(finished) != len(demoWant) {
		t.Fatalf("%d steps finished, want %d", len(finished), len(demoWant))
	}
	for i, w := range demoWant {
		ev := finished[i]
		code := -1
		if ev.ExitCode != nil {
			code = *ev.ExitCode
		}
		if ev.Outcome != w.outcome || ev.Conclusion != w.conclusion || (w.exit != -2 && code != w.exit) {
			t.Errorf("step %q: outcome %s conclusion %s exit %d; want %s %s %d (reason %q)", w.name, ev.Outcome, ev.Conclusion, code, w.outcome, w.conclusion, w.exit, ev.Reason)
		}
	}
	last := evs[len(evs)-1]
	if last.Type != contract.TypeJobFinished || last.Conclusion != contract.Failure {
		t.Errorf("last event %s %s, want job_finished failure", last.Type, last.Conclusion)
	}
	var outputs map[string]string
	for _, ev := range evs {
		if ev.Type == contract.TypeOutputs {
			outputs = ev.Outputs
		}
	}
	if outputs["answer"] != "42" {
		t.Errorf("job outputs = %v, want answer=42", outputs)
	}
	for _, want := range []string{"FOO=bar", "hello from the test host", "ps hits: 0", "cleanup, answer=42", "the password is ***", "the secret is ***", "has timed out after"} {
		if !logHas(evs, want) {
			t.Errorf("no log line contains %q", want)
		}
	}
	if logHas(evs, "should not run") {
		t.Error("a step after the failure ran")
	}
}

// dumpEvents shows the job's log when the test failed.
func dumpEvents(t *testing.T, evs []contract.Event) {
	if !t.Failed() {
		return
	}
	var b strings.Builder
	for _, ev := range evs {
		b.Write(contract.MarshalEvent(&ev))
	}
	t.Logf("events.jsonl:\n%s", b.String())
}

func logHas(evs []contract.Event, s string) bool {
	for _, ev := range evs {
		if (ev.Type == contract.TypeLog && strings.Contains(ev.Line, s)) || strings.Contains(ev.Reason, s) {
			return true
		}
	}
	return false
}

// checkLogs: nomad alloc logs show the job as readable text, step by step.
func checkLogs(t *testing.T, logs string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "==> ") || strings.HasPrefix(l, "<== ") {
			got = append(got, l[:strings.Index(l+" in ", " in ")])
		}
	}
	want := []string{
		"==> Checkout", "<== Checkout: success",
		"==> Env and mask", "<== Env and mask: success (exit code 0)",
		"==> Output", "<== Output: success (exit code 0)",
		"==> Secret", "<== Secret: success (exit code 0)",
		"==> Slow", "<== Slow: success",
		"==> Allowed to fail", "<== Allowed to fail: success (exit code 3)",
		"==> Fails", "<== Fails: failure (exit code 4)",
		"==> Never", "<== Never: skipped",
		"==> On failure", "<== On failure: success (exit code 0)",
		"==> job failure",
	}
	// The timed-out step's exit code depends on how the shell died.
	for i := range got {
		if strings.HasPrefix(got[i], "<== Slow: success") {
			got[i] = "<== Slow: success"
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alloc logs show\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// checkNoSecrets looks for the secret values everywhere Nomad shows.
func checkNoSecrets(t *testing.T, n *Nomad, jobID string, alloc *api.Allocation, evs []contract.Event) {
	t.Helper()
	job, _, err := n.API.Jobs().Info(jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := n.API.Allocations().Info(alloc.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobJSON, _ := json.Marshal(job)
	allocJSON, _ := json.Marshal(full)
	var evJSON bytes.Buffer
	for _, ev := range evs {
		evJSON.Write(contract.MarshalEvent(&ev))
	}
	places := map[string]string{
		"the Nomad job (spec, meta, payload)": string(jobJSON),
		"the allocation":                      string(allocJSON),
		"the events file":                     evJSON.String(),
		"the alloc stdout":                    n.Logs(alloc, contract.TaskName, "stdout"),
		"the alloc stderr":                    n.Logs(alloc, contract.TaskName, "stderr"),
	}
	for where, text := range places {
		for _, secret := range []string{planSecret, planToken, planAddMask} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains the secret %q", where, secret)
			}
		}
	}
}

// dispatchPlan registers the test label's parent job and dispatches p.
func dispatchPlan(t testing.TB, n *Nomad, p *contract.Plan, secrets map[string]string) (*nomad.Client, *nomad.Job) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	if _, err := (&nomad.Client{API: n.API}).Sync(ctx, []string{"../jobspecs/labels/solstice-test.nomad.hcl"}); err != nil {
		t.Fatal(err)
	}
	var payload bytes.Buffer
	if err := contract.EncodePlanCompressed(&payload, p); err != nil {
		t.Fatal(err)
	}
	d := &nomad.Client{API: n.API, Log: testLogger(t)}
	job, err := d.Dispatch(ctx, nomad.Request{
		Label: "solstice-test", Plan: payload.Bytes(), Secrets: secrets,
		Meta: nomad.Meta{Forge: "e2e", Instance: "local", TaskID: p.Job.ID, JobName: p.Job.Name},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, job
}

// TestJobSurvivesPluginKill kills the driver plugin while a step prints,
// and checks the job completes with every event exactly once.
func TestJobSurvivesPluginKill(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	p := &contract.Plan{
		Version: contract.PlanVersion,
		Job:     contract.Job{ID: "survivor", Name: "survivor"},
		Steps: []contract.Step{
			{Name: "Count", Run: "for i in $(seq 1 20); do echo tick $i; sleep 1; done"},
			{Name: "After", Run: "echo after the restart"},
		},
	}
	_, job := dispatchPlan(t, n, p, nil)
	n.WaitAlloc(job.ID, 4*time.Minute, "counting", func(a *api.Allocation) bool {
		st := a.TaskStates[contract.TaskName]
		return st != nil && st.State == "running" && strings.Contains(n.Logs(a, contract.TaskName, "stdout"), "tick 3")
	})
	before := pluginPIDs(t)
	for _, pid := range before {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Logf("killed the plugin (%v) mid-step", before)
	alloc := n.WaitAlloc(job.ID, 4*time.Minute, "finished", func(a *api.Allocation) bool {
		st := a.TaskStates[contract.TaskName]
		return st != nil && st.State == "dead"
	})
	if alloc.ClientStatus != api.AllocClientStatusComplete {
		t.Fatalf("the job did not complete after the plugin restart: %s", describe(alloc))
	}
	evs := readEvents(t, n, alloc)
	defer dumpEvents(t, evs)
	ticks := 0
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: a gap or a repeat", i+1, ev.Seq)
		}
		if ev.Type == contract.TypeLog && strings.HasPrefix(ev.Line, "tick ") {
			ticks++
		}
	}
	if ticks != 20 || !logHas(evs, "after the restart") {
		t.Fatalf("%d ticks (want 20), after-step logged: %v", ticks, logHas(evs, "after the restart"))
	}
	if last := evs[len(evs)-1]; last.Type != contract.TypeJobFinished || last.Conclusion != contract.Success {
		t.Fatalf("last event %s %s", last.Type, last.Conclusion)
	}
}
