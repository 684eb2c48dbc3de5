package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestWorkingDirectory(t *testing.T) {
	abs := t.TempDir()
	tests := []struct {
		name     string
		defaults string
		step     string
		want     string // relative to the workspace unless absolute
		ok       bool
	}{
		{"workspace", "", "", ".", true},
		{"step relative", "", "sub", "sub", true},
		{"defaults", "sub", "", "sub", true},
		{"step beats defaults", "other", "sub", "sub", true},
		{"absolute wins", "sub", abs, abs, true},
		{"expression", "", "${{ 'sub' }}", "sub", true},
		{"missing directory", "", "nope", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prepare := contract.Step{Run: `mkdir -p "$GITHUB_WORKSPACE/sub" "$GITHUB_WORKSPACE/other"`, WorkingDirectory: "/"}
			p := newPlan(prepare, contract.Step{Run: "pwd", WorkingDirectory: tt.step})
			p.Defaults.Run.WorkingDirectory = tt.defaults
			r := runJob(t, p)
			if !tt.ok {
				r.expect(1, contract.Failure, contract.Failure)
				if !strings.Contains(r.system(1), "working directory") {
					t.Errorf("error: %s", r.system(1))
				}
				return
			}
			want := tt.want
			if !filepath.IsAbs(want) {
				want = filepath.Join(r.job.workspace, want)
			}
			if got := r.output(1); got != want {
				t.Errorf("pwd = %q, want %q\n%s", got, want, r.system(1))
			}
		})
	}
}

func TestEnvPrecedence(t *testing.T) {
	p := newPlan(
		contract.Step{Run: `echo "B=genv" >> "$GITHUB_ENV"; echo "C=genv" >> "$GITHUB_ENV"`},
		contract.Step{Run: `echo "A=$A B=$B C=$C SHA=$GITHUB_SHA"`, Env: contract.Strings{"C": "step", "GITHUB_SHA": "mine"}},
		contract.Step{Run: `echo "env.B=${{ env.B }} env.C=${{ env.C }}"`},
	)
	p.Env = []contract.EnvVar{{Name: "A", Value: "wf"}, {Name: "B", Value: "wf"}, {Name: "A", Value: "job"}, {Name: "B", Value: "job"}, {Name: "C", Value: "job"}}
	r := runJob(t, p)
	if got := r.output(1); got != "A=job B=genv C=step SHA=abc" {
		t.Errorf("step env: %q", got)
	}
	if got := r.output(2); got != "env.B=genv env.C=genv" {
		t.Errorf("env context: %q", got)
	}
}

func TestJobEnvExpressions(t *testing.T) {
	p := newPlan(runStep(`echo "$GREETING $WHO"`))
	p.Env = []contract.EnvVar{{Name: "GREETING", Value: "hello"}, {Name: "WHO", Value: "${{ matrix.os }}-${{ github.repository }}"}}
	p.Contexts["matrix"] = json.RawMessage(`{"os":"omnios"}`)
	r := runJob(t, p)
	if got := r.output(0); got != "hello omnios-o/r" {
		t.Errorf("got %q", got)
	}
	// A broken job env fails the job before its steps.
	p.Env = []contract.EnvVar{{Name: "X", Value: "${{ nosuch.context }}"}}
	r = runJob(t, p)
	r.expect(0, contract.Skipped, contract.Skipped)
	if r.conclusion() != contract.Failure || !strings.Contains(strings.Join(r.lines(-1), "\n"), "Failed to evaluate the env") {
		t.Errorf("conclusion %s: %q", r.conclusion(), r.lines(-1))
	}
}

func TestRuntimeVariables(t *testing.T) {
	r := runJob(t, newPlan(runStep(`for v in GITHUB_ACTIONS CI GITHUB_WORKSPACE GITHUB_REPOSITORY GITHUB_SHA GITHUB_REF GITHUB_JOB GITHUB_ACTION RUNNER_OS RUNNER_ARCH RUNNER_TEMP RUNNER_ENVIRONMENT; do eval "echo $v=\$$v"; done
test -f "$GITHUB_EVENT_PATH" && cat "$GITHUB_EVENT_PATH"; echo
for f in GITHUB_ENV GITHUB_PATH GITHUB_OUTPUT GITHUB_STATE GITHUB_STEP_SUMMARY; do eval "test -f \$$f -a ! -s \$$f" && echo "$f fresh"; done`)))
	out := r.output(0)
	for _, want := range []string{
		"GITHUB_ACTIONS=true", "CI=true", "GITHUB_WORKSPACE=" + r.job.workspace, "GITHUB_REPOSITORY=o/r",
		"GITHUB_SHA=abc", "GITHUB_REF=refs/heads/main", "GITHUB_JOB=build", "GITHUB_ACTION=__run",
		"RUNNER_OS=Linux", "RUNNER_ARCH=X64", "RUNNER_TEMP=" + r.layout.Temp, "RUNNER_ENVIRONMENT=self-hosted",
		`{"z":1,"a":2}`, "GITHUB_ENV fresh", "GITHUB_PATH fresh", "GITHUB_OUTPUT fresh", "GITHUB_STATE fresh", "GITHUB_STEP_SUMMARY fresh",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if filepath.Base(r.job.workspace) != "r" || filepath.Dir(r.job.workspace) != r.layout.Work {
		t.Errorf("workspace %s", r.job.workspace)
	}
}

func TestCIKeptWhenSet(t *testing.T) {
	r := runJob(t, newPlan(runStep(`echo "CI=$CI"`), contract.Step{Run: `echo "CI=$CI"`, Env: contract.Strings{"CI": "step"}}), withEnv("CI=agent"))
	if r.output(0) != "CI=agent" || r.output(1) != "CI=step" {
		t.Errorf("%q %q", r.output(0), r.output(1))
	}
}

func TestGitHubPath(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, b, "mytool", "#!/bin/sh\necho tool from b\n", 0o755)
	p := newPlan(
		contract.Step{Run: "echo " + a + " >> $GITHUB_PATH; echo " + b + " >> $GITHUB_PATH"},
		contract.Step{Run: `echo "$PATH"; mytool`},
		contract.Step{Run: "echo " + a + " >> $GITHUB_PATH"}, // again: moves to the front
		contract.Step{Run: `echo "$PATH"`, Env: contract.Strings{"PATH": "/custom"}},
	)
	r := runJob(t, p)
	out := r.lines(1, contract.Stdout)
	if len(out) != 2 || !strings.HasPrefix(out[0], b+":"+a+":") || out[1] != "tool from b" {
		t.Errorf("PATH: %q", out)
	}
	if got := r.output(3); got != a+":"+b+":/custom" {
		t.Errorf("PATH with step env: %q", got)
	}
}

func TestConditions(t *testing.T) {
	p := newPlan(
		runStep("exit 1"),                                          // 0 fails
		runStep("echo skipped"),                                    // 1 success() is implied
		contract.Step{Run: "echo always", If: "always()"},          // 2
		contract.Step{Run: "echo failure", If: "failure()"},        // 3
		contract.Step{Run: "echo success", If: "success()"},        // 4
		contract.Step{Run: "echo implied", If: "true"},             // 5: success() && (true)
		contract.Step{Run: "echo cancelled", If: "cancelled()"},    // 6
		contract.Step{Run: "echo bad", If: "always() && nosuch.x"}, // 7: evaluation error fails the step
		contract.Step{Run: "echo status ${{ job.status }}", If: "${{ always() }}"},
	)
	r := runJob(t, p)
	want := []string{contract.Failure, contract.Skipped, contract.Success, contract.Success, contract.Skipped, contract.Skipped, contract.Skipped, contract.Failure, contract.Success}
	for i, w := range want {
		r.expect(i, w, w)
	}
	if r.output(8) != "status failure" {
		t.Errorf("job.status: %q", r.output(8))
	}
	if ev := r.finished(1); ev.Reason != `the condition "success()" was false` {
		t.Errorf("skip reason %q", ev.Reason)
	}
	if !strings.Contains(r.system(0), "Error: Process completed with exit code 1.") {
		t.Errorf("exit message: %s", r.system(0))
	}
	if code := r.finished(0).ExitCode; code == nil || *code != 1 {
		t.Errorf("exit code %v", code)
	}
	if r.conclusion() != contract.Failure || r.res.ExitCode() != ExitJobFailed {
		t.Errorf("job %s", r.conclusion())
	}
}

func TestContinueOnError(t *testing.T) {
	p := newPlan(
		contract.Step{ID: "flaky", Run: "exit 3", ContinueOnError: "true"},
		contract.Step{Run: "echo ${{ steps.flaky.outcome }} ${{ steps.flaky.conclusion }}"},
		contract.Step{Run: "echo failure ran", If: "failure()"},
		contract.Step{ID: "expr", Run: "exit 1", ContinueOnError: "${{ matrix.experimental }}"},
		contract.Step{Run: "echo after"},
	)
	p.Contexts["matrix"] = json.RawMessage(`{"experimental":true}`)
	r := runJob(t, p)
	r.expect(0, contract.Failure, contract.Success)
	if r.output(1) != "failure success" {
		t.Errorf("steps context: %q", r.output(1))
	}
	r.expect(2, contract.Skipped, contract.Skipped)
	r.expect(3, contract.Failure, contract.Success)
	r.expect(4, contract.Success, contract.Success)
	if r.conclusion() != contract.Success {
		t.Errorf("job %s", r.conclusion())
	}
}

func TestStepTimeout(t *testing.T) {
	start := time.Now()
	p := newPlan(
		contract.Step{Name: "Sleepy", Run: "sleep 30", TimeoutMinutes: "0.01"},
		contract.Step{Run: "echo cleanup", If: "always()"},
		contract.Step{Run: "sleep 30", TimeoutMinutes: "${{ fromJSON('0.01') }}", ContinueOnError: "true", If: "always()"},
	)
	r := runJob(t, p)
	r.expect(0, contract.Failure, contract.Failure)
	r.expect(1, contract.Success, contract.Success)
	r.expect(2, contract.Failure, contract.Success)
	if !strings.Contains(r.system(0), "The action 'Sleepy' has timed out after 0.01 minutes.") {
		t.Errorf("message: %s", r.system(0))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestJobTimeout(t *testing.T) {
	p := newPlan(
		runStep("sleep 30"),
		runStep("echo never"),
		contract.Step{Run: "echo cleanup ${{ job.status }}", If: "always()"},
		contract.Step{Run: "echo 'cancelled() is true'", If: "cancelled()"},
	)
	p.TimeoutMinutes = 0.02 // 1.2 s
	r := runJob(t, p)
	r.expect(0, contract.Cancelled, contract.Cancelled)
	r.expect(1, contract.Skipped, contract.Skipped)
	if r.output(2) != "cleanup cancelled" || r.output(3) != "cancelled() is true" {
		t.Errorf("cleanup steps: %q %q", r.output(2), r.output(3))
	}
	if r.conclusion() != contract.Failure || r.res.ExitCode() != ExitJobFailed {
		t.Errorf("job %s", r.conclusion())
	}
	if !strings.Contains(strings.Join(r.lines(-1), "\n"), "The job has exceeded the maximum execution time of 0.02 minutes.") {
		t.Errorf("job lines: %q", r.lines(-1))
	}
}

// Cancel: SIGINT reaches the step's whole process tree, the running step
// is cancelled, always() and cancelled() steps run, the job is cancelled.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p := newPlan(
		runStep(`sleep 60 & echo $! > `+pidFile+`
trap 'echo got INT; exit 130' INT
echo ready; wait`),
		runStep("echo never"),
		contract.Step{Run: "echo always ${{ job.status }}", If: "always()"},
		contract.Step{Run: "echo cancelled", If: "cancelled()"},
		contract.Step{Run: "echo failure", If: "failure()"},
	)
	r := runJob(t, p, func(s *setup) {
		s.during = func(j *Job) {
			waitFor(t, func() bool { _, err := os.Stat(pidFile); return err == nil })
			time.Sleep(200 * time.Millisecond)
			j.Cancel()
		}
	})
	r.expect(0, contract.Cancelled, contract.Cancelled)
	r.expect(1, contract.Skipped, contract.Skipped)
	r.expect(2, contract.Success, contract.Success)
	r.expect(3, contract.Success, contract.Success)
	r.expect(4, contract.Skipped, contract.Skipped)
	if !strings.Contains(r.output(0), "got INT") || !strings.Contains(r.system(0), "The operation was canceled.") {
		t.Errorf("step 0: %s\n%s", r.output(0), r.system(0))
	}
	if r.output(2) != "always cancelled" {
		t.Errorf("always step: %q", r.output(2))
	}
	if r.conclusion() != contract.Cancelled || r.res.ExitCode() != ExitCancelled {
		t.Errorf("job %s", r.conclusion())
	}
	if pid := readPid(pidFile); !gone(pid) {
		t.Errorf("child %s of the cancelled step survived", pid)
	}
}

// A step that ignores SIGINT and SIGTERM is killed after the grace
// periods; an always() step that runs too long after a cancel is stopped
// at the cancel timeout.
func TestCancelEscalatesAndCancelTimeout(t *testing.T) {
	p := newPlan(
		runStep(`trap '' INT TERM; echo ready; while true; do sleep 0.1; done`),
		contract.Step{Run: "sleep 30", If: "always()"},
	)
	p.CancelTimeoutMinutes = 0.02
	start := time.Now()
	r := runJob(t, p, func(s *setup) {
		s.during = func(j *Job) { time.Sleep(500 * time.Millisecond); j.Cancel() }
	})
	r.expect(0, contract.Cancelled, contract.Cancelled)
	r.expect(1, contract.Cancelled, contract.Cancelled)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestOutputs(t *testing.T) {
	p := newPlan(
		contract.Step{ID: "v", Run: `echo "version=1.2.3" >> "$GITHUB_OUTPUT"; echo "secret=$TOKEN" >> "$GITHUB_OUTPUT"`, Env: contract.Strings{"TOKEN": "${{ secrets.TOKEN }}"}},
		contract.Step{Run: "echo v=${{ steps.v.outputs.version }}"},
	)
	p.Secrets = []string{"TOKEN"}
	p.Outputs = map[string]string{"version": "${{ steps.v.outputs.version }}", "leak": "${{ steps.v.outputs.secret }}", "empty": "${{ steps.v.outputs.none }}"}
	r := runJob(t, p, withSecrets(map[string]string{"TOKEN": "tok-123456"}))
	if r.output(1) != "v=1.2.3" {
		t.Errorf("step output: %q", r.output(1))
	}
	outs := r.ofType(contract.TypeOutputs)
	if len(outs) != 1 || len(outs[0].Outputs) != 1 || outs[0].Outputs["version"] != "1.2.3" {
		t.Fatalf("outputs: %+v", outs)
	}
	if !strings.Contains(strings.Join(r.lines(-1), "\n"), "Skip output 'leak' since it may contain secret.") {
		t.Errorf("job lines: %q", r.lines(-1))
	}
	// outputs come after the last step, right before job_finished
	if r.events[len(r.events)-2].Type != contract.TypeOutputs {
		t.Errorf("outputs not last before job_finished")
	}
}

func TestExitCodes(t *testing.T) {
	r := runJob(t, newPlan(runStep("exit 3"), contract.Step{Run: "kill -TERM $$", If: "always()"}))
	if c := r.finished(0).ExitCode; c == nil || *c != 3 {
		t.Errorf("exit code %v", c)
	}
	if c := r.finished(1).ExitCode; c == nil || *c != 143 {
		t.Errorf("signal exit code %v (want 128+15)", c)
	}
	if !strings.Contains(r.system(1), "Process completed with exit code 143.") {
		t.Errorf("%s", r.system(1))
	}
}

// A background process that keeps the step's output open does not hold
// the step beyond the drain time; it is killed when the job ends.
func TestBackgroundProcess(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "bg.pid")
	start := time.Now()
	r := runJob(t, newPlan(runStep(`sleep 60 & echo $! > `+pidFile+`; echo started`), runStep("echo next")))
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the background process held the job for %v", d)
	}
	r.expect(0, contract.Success, contract.Success)
	if pid := readPid(pidFile); !gone(pid) {
		t.Errorf("orphan %s not cleaned up", pid)
	}
	if !strings.Contains(strings.Join(r.lines(-1), "\n"), "Cleaning up orphan processes") {
		t.Errorf("job lines %q", r.lines(-1))
	}
}

func TestDisplayNames(t *testing.T) {
	p := newPlan(
		contract.Step{Run: "  echo first\necho second"},
		contract.Step{Name: "Build ${{ matrix.os }}", Run: "true"},
		contract.Step{Run: "echo ${{ matrix.os }}"},
	)
	p.Contexts["matrix"] = json.RawMessage(`{"os":"omnios"}`)
	r := runJob(t, p)
	var names []string
	for _, ev := range r.ofType(contract.TypeStepStarted) {
		names = append(names, ev.Name)
	}
	if strings.Join(names, "|") != "Run echo first|Build omnios|Run echo omnios" {
		t.Errorf("names %q", names)
	}
}

func TestHashFiles(t *testing.T) {
	p := newPlan(
		runStep("mkdir -p a/b && echo one > a/x.txt && echo two > a/b/y.txt && echo no > a/z.md"),
		runStep("echo h=${{ hashFiles('**/*.txt') }}"),
		runStep("echo n=${{ hashFiles('nothing/**') }}"),
		runStep("echo e=${{ hashFiles('**/*.txt', '!a/b/**') }}"),
	)
	r := runJob(t, p)
	h := strings.TrimPrefix(r.output(1), "h=")
	if len(h) != 64 || r.output(2) != "n=" {
		t.Errorf("hashes %q %q", r.output(1), r.output(2))
	}
	e := strings.TrimPrefix(r.output(3), "e=")
	if len(e) != 64 || e == h {
		t.Errorf("exclusion did not change the hash: %q", r.output(3))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("timed out waiting")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}

// gone waits a little for a killed process to disappear (SIGKILL is
// delivered asynchronously).
func gone(pid string) bool {
	for i := 0; i < 100 && processExists(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return !processExists(pid)
}

// processExists reports whether pid is a live (not zombie) process.
func processExists(pid string) bool {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}
