package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// The test binary doubles as solstice-guest (also when the agent
// re-executes itself to detach), so the tests run the real command.
func TestMain(m *testing.M) {
	if os.Getenv("SOLSTICE_GUEST_TEST_MAIN") == "1" {
		os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func agent(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SOLSTICE_GUEST_TEST_MAIN=1")
	return cmd
}

func writePlan(t *testing.T, steps ...contract.Step) string {
	t.Helper()
	p := &contract.Plan{Version: 1, Job: contract.Job{ID: "j", Name: "job"}, Steps: steps, Secrets: []string{"TOKEN"},
		Contexts: map[string]json.RawMessage{"github": json.RawMessage(`{"repository":"o/r"}`)}}
	var buf bytes.Buffer
	if err := contract.EncodePlanCompressed(&buf, p); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plan.json.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func readStream(t *testing.T, root string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func lastEvent(t *testing.T, stream []byte) contract.Event {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace(stream), []byte("\n"))
	ev, err := contract.DecodeEvent(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestVersionAndUsage(t *testing.T) {
	out, err := agent("version").Output()
	if err != nil || !strings.HasPrefix(string(out), "solstice-guest ") {
		t.Errorf("version: %q %v", out, err)
	}
	if code := exitCode(agent("frobnicate").Run()); code != exitUsage {
		t.Errorf("unknown command exited %d", code)
	}
	if code := exitCode(agent("run").Run()); code != exitUsage {
		t.Errorf("run without a plan exited %d", code)
	}
}

func TestRunForeground(t *testing.T) {
	tests := []struct {
		name       string
		steps      []contract.Step
		stdin      string
		code       int
		conclusion string
	}{
		{"success", []contract.Step{{Run: "echo token=${{ secrets.TOKEN }}"}}, `{"TOKEN":"s3cr3t-tok"}`, 0, contract.Success},
		{"failure", []contract.Step{{Run: "exit 5"}}, ``, 1, contract.Failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			cmd := agent("run", writePlan(t, tt.steps...), "--root", root) // flags after the plan work too
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if code := exitCode(cmd.Run()); code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			stream := readStream(t, root)
			if !bytes.Equal(stdout.Bytes(), stream) {
				t.Errorf("stdout differs from the events file")
			}
			if ev := lastEvent(t, stream); ev.Conclusion != tt.conclusion {
				t.Errorf("conclusion %s", ev.Conclusion)
			}
			if bytes.Contains(stream, []byte("s3cr3t-tok")) || (tt.name == "success" && !bytes.Contains(stream, []byte("token=***"))) {
				t.Errorf("secret not masked:\n%s", stream)
			}
			if _, err := os.Stat(filepath.Join(root, "agent.pid")); err == nil {
				t.Error("pid file left behind")
			}
		})
	}
}

func TestRunInfrastructureErrors(t *testing.T) {
	root := t.TempDir()
	bad := filepath.Join(t.TempDir(), "plan.json")
	os.WriteFile(bad, []byte(`{"version":1,"job":{"id":"j"},"steps":[{"uses":"some/action@v1"}]}`), 0o644)
	cmd := agent("run", "--root", root, bad)
	if code := exitCode(cmd.Run()); code != 3 {
		t.Fatalf("invalid plan: exit %d", code)
	}
	ev := lastEvent(t, readStream(t, root))
	if ev.Type != contract.TypeInfraError || !strings.Contains(ev.Message, "action some/action@v1 is not supported") {
		t.Errorf("last event %+v", ev)
	}
	// The root already holds a stream: a second job is refused.
	if code := exitCode(agent("run", "--root", root, writePlan(t, contract.Step{Run: "true"})).Run()); code != 3 {
		t.Errorf("second run in the same root: exit %d", code)
	}
	// Secrets that are not a JSON object of strings.
	cmd = agent("run", "--root", t.TempDir(), writePlan(t, contract.Step{Run: "true"}))
	cmd.Stdin = strings.NewReader(`["not", "an object"]`)
	if code := exitCode(cmd.Run()); code != 3 {
		t.Errorf("bad secrets: exit %d", code)
	}
}

func TestRunCancelledBySignal(t *testing.T) {
	root := t.TempDir()
	cmd := agent("run", "--root", root, writePlan(t, contract.Step{Run: "echo started; sleep 30"}, contract.Step{Run: "echo cleanup", If: "always()"}))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, root, "started")
	if code := exitCode(agent("cancel", "--root", root).Run()); code != 0 {
		t.Errorf("cancel exit %d", code)
	}
	if code := exitCode(cmd.Wait()); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	stream := readStream(t, root)
	if ev := lastEvent(t, stream); ev.Conclusion != contract.Cancelled || !bytes.Contains(stream, []byte(`"line":"cleanup"`)) {
		t.Errorf("stream:\n%s", stream)
	}
	if code := exitCode(agent("cancel", "--root", root).Run()); code != 0 {
		t.Errorf("cancel without a job: exit %d", code)
	}
}

// The driver's way: start detached, follow from 0, resume from an offset,
// cancel.
func TestDetachFollowCancel(t *testing.T) {
	root := t.TempDir()
	run := agent("run", "--detach", "--root", root, writePlan(t,
		contract.Step{Run: "echo one; echo two; echo ${{ secrets.TOKEN }}"},
		contract.Step{Run: "echo sleeping; sleep 30"},
		contract.Step{Run: "echo cleanup", If: "always()"}))
	run.Stdin = strings.NewReader(`{"TOKEN":"detached-secret"}`)
	start := time.Now()
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("detach: %v\n%s", err, out)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("run --detach waited for the job")
	}
	if _, err := os.Stat(filepath.Join(root, "events.jsonl")); err != nil {
		t.Fatal("run --detach returned before the stream existed")
	}

	follow := agent("follow", "--root", root, "--from", "0")
	stdout, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	cancelled := false
	for sc.Scan() {
		got.Write(sc.Bytes())
		got.WriteByte('\n')
		if !cancelled && bytes.Contains(sc.Bytes(), []byte(`"line":"sleeping"`)) {
			if code := exitCode(agent("cancel", "--root", root).Run()); code != 0 {
				t.Errorf("cancel exit %d", code)
			}
			cancelled = true
		}
	}
	if code := exitCode(follow.Wait()); code != 0 {
		t.Errorf("follow exit %d", code)
	}
	stream := readStream(t, root)
	if !bytes.Equal(got.Bytes(), stream) {
		t.Errorf("follow output is not the stream verbatim:\n%s\n---\n%s", got.Bytes(), stream)
	}
	if ev := lastEvent(t, stream); ev.Conclusion != contract.Cancelled {
		t.Errorf("conclusion %s", ev.Conclusion)
	}
	if bytes.Contains(stream, []byte("detached-secret")) {
		t.Error("secret leaked")
	}

	// Resume from every offset: exactly the rest of the stream.
	lines := bytes.SplitAfter(stream, []byte("\n"))
	offset := 0
	for i, l := range lines[:len(lines)-1] {
		offset += len(l)
		if i%3 != 0 {
			continue
		}
		out, err := agent("follow", "--root", root, "--from", strconv.Itoa(offset)).Output()
		if err != nil || !bytes.Equal(out, stream[offset:]) {
			t.Fatalf("follow --from %d: %v\n%s", offset, err, out)
		}
	}
}

// follow gives up when the agent died without finishing the stream.
func TestFollowDeadAgent(t *testing.T) {
	root := t.TempDir()
	line := contract.MarshalEvent(&contract.Event{Seq: 1, Type: contract.TypeJobStarted, Job: &contract.Job{ID: "j"}})
	os.WriteFile(filepath.Join(root, "events.jsonl"), line, 0o644)
	os.WriteFile(filepath.Join(root, "agent.pid"), []byte("999999999\n"), 0o644)
	start := time.Now()
	cmd := agent("follow", "--root", root)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if code := exitCode(cmd.Run()); code != 3 {
		t.Errorf("exit %d", code)
	}
	if !bytes.Equal(stdout.Bytes(), line) || time.Since(start) > 10*time.Second {
		t.Errorf("output %q after %v", stdout.Bytes(), time.Since(start))
	}
}

func waitForLine(t *testing.T, root, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(filepath.Join(root, "events.jsonl"))
		if bytes.Contains(data, []byte(`"line":"`+text+`"`)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line %q", text)
}

// run --detach --follow is the driver's first session: it starts the job
// like --detach, then prints the whole stream verbatim as follow --from 0
// does, and exits 0 at its end (a plan it cannot read is an infra_error
// in the stream, as with --detach alone). A start that fails before the
// stream exists prints nothing and exits 3.
func TestDetachAndFollowInOneSession(t *testing.T) {
	root := t.TempDir()
	run := agent("run", "--detach", "--follow", "--root", root, writePlan(t,
		contract.Step{Run: "echo one; echo ${{ secrets.TOKEN }}"},
		contract.Step{Run: "echo two"}))
	run.Stdin = strings.NewReader(`{"TOKEN":"followed-secret"}`)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("run --detach --follow: %v\n%s", err, stderr.Bytes())
	}
	stream := readStream(t, root)
	if !bytes.Equal(out, stream) {
		t.Errorf("the session's output is not the stream verbatim:\n%s\n---\n%s", out, stream)
	}
	if ev := lastEvent(t, stream); ev.Type != contract.TypeJobFinished || ev.Conclusion != contract.Success {
		t.Errorf("last event %+v, want job_finished success", ev)
	}
	if bytes.Contains(stream, []byte("followed-secret")) {
		t.Error("secret leaked")
	}

	noPlan := agent("run", "--detach", "--follow", "--root", t.TempDir(), filepath.Join(t.TempDir(), "none.json"))
	noPlan.Stdin = strings.NewReader("{}")
	out, err = noPlan.Output()
	if ev := lastEvent(t, out); err != nil || ev.Type != contract.TypeInfraError || !strings.Contains(ev.Message, "none.json") {
		t.Errorf("no plan: %v, stream %s: want exit 0 and an infra_error naming the plan", err, out)
	}

	notADir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notADir, nil, 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"root is a file", []string{"run", "--detach", "--follow", "--root", notADir, "plan.json"}, "detach: create " + notADir},
		{"without --detach", []string{"run", "--follow", "--root", t.TempDir(), "plan.json"}, "--follow goes with --detach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := agent(tc.args...)
			cmd.Stdin = strings.NewReader("{}")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if code := exitCode(err); code != 3 || len(out) != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q: want exit 3, no stdout, stderr naming %q", code, out, stderr.String(), tc.want)
			}
		})
	}
}
