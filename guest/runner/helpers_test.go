package runner

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/guest/mask"
	"github.com/solstice-ci/solstice/internal/contract"
)

// testTiming keeps cancellation fast in tests.
var testTiming = Timing{Interrupt: 300 * time.Millisecond, Terminate: 300 * time.Millisecond, Drain: 500 * time.Millisecond}

// run is a finished test job.
type run struct {
	t      *testing.T
	res    Result
	events []contract.Event
	layout Layout
	job    *Job
}

type setup struct {
	secrets map[string]string
	environ []string
	layout  *Layout
	during  func(j *Job) // called in a goroutine once the job runs
	after   func()       // called when the job has finished, before its events are read
}

// newPlan is a plan of the given steps for repository o/r.
func newPlan(steps ...contract.Step) *contract.Plan {
	return &contract.Plan{
		Version: 1, Job: contract.Job{ID: "build", Name: "build"}, Steps: steps,
		Contexts: map[string]json.RawMessage{"github": json.RawMessage(`{"repository":"o/r","sha":"abc","ref":"refs/heads/main","server_url":"https://forge.example","event":{"z":1,"a":2}}`)},
	}
}

// testEnviron is a small, predictable environment for steps: PATH from
// the host, and HOME in a temporary directory (checkout writes git's
// global config there).
func testEnviron(t *testing.T) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C"}
}

func runJob(t *testing.T, p *contract.Plan, opts ...func(*setup)) *run {
	t.Helper()
	st := &setup{environ: testEnviron(t)}
	for _, o := range opts {
		o(st)
	}
	layout := NewLayout(t.TempDir())
	if st.layout != nil {
		layout = *st.layout
	}
	if err := os.MkdirAll(layout.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("invalid test plan: %v", err)
	}
	m := mask.New()
	ew, err := events.Create(layout.Events, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	j, err := New(p, Options{Layout: layout, Events: ew, Masker: m, Secrets: st.secrets, Environ: st.environ, Timing: testTiming, AgentVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if st.during != nil {
		go st.during(j)
	}
	res := j.Run()
	ew.Close()
	if st.after != nil {
		st.after()
	}
	r := &run{t: t, res: res, layout: layout, job: j, events: readEvents(t, layout.Events)}
	r.checkStream(len(p.Steps))
	return r
}

func withSecrets(s map[string]string) func(*setup) { return func(st *setup) { st.secrets = s } }

func withEnv(kv ...string) func(*setup) {
	return func(st *setup) { st.environ = append(st.environ, kv...) }
}

func readEvents(t *testing.T, path string) []contract.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Event
	check := &contract.Checker{} // what the shims accept
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		if _, err := check.Check(&ev); err != nil {
			t.Fatalf("the shims would refuse event line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// checkStream checks the stream contract: seq 1, 2, 3…; job_started
// first, job_finished last; every step started and finished once, in
// order.
func (r *run) checkStream(steps int) {
	t := r.t
	t.Helper()
	if len(r.events) < 2 {
		t.Fatalf("only %d events", len(r.events))
	}
	next := 0
	started := -1
	for i, ev := range r.events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		switch ev.Type {
		case contract.TypeStepStarted:
			if ev.Step != next || started != -1 {
				t.Fatalf("step_started %d out of order (next %d)", ev.Step, next)
			}
			started = ev.Step
		case contract.TypeStepFinished:
			if ev.Step != started {
				t.Fatalf("step_finished %d without its start", ev.Step)
			}
			started = -1
			next++
		}
	}
	if r.events[0].Type != contract.TypeJobStarted || !r.events[len(r.events)-1].Terminal() {
		t.Fatalf("stream not framed by job_started and a terminal event: %s … %s", r.events[0].Type, r.events[len(r.events)-1].Type)
	}
	if r.res.Err == nil && next != steps {
		t.Fatalf("%d of %d steps reported", next, steps)
	}
}

// lines returns the log lines of a step (-1: the job) on the streams
// given (all when none).
func (r *run) lines(step int, streams ...string) []string {
	var out []string
	for _, ev := range r.events {
		if ev.Type != contract.TypeLog || ev.Step != step {
			continue
		}
		if len(streams) == 0 || contains(streams, ev.Stream) {
			out = append(out, ev.Line)
		}
	}
	return out
}

// output is a step's stdout and stderr lines joined by newlines.
func (r *run) output(step int) string {
	return strings.Join(r.lines(step, contract.Stdout, contract.Stderr), "\n")
}

func (r *run) system(step int) string { return strings.Join(r.lines(step, contract.System), "\n") }

func (r *run) finished(step int) contract.Event {
	for _, ev := range r.events {
		if ev.Type == contract.TypeStepFinished && ev.Step == step {
			return ev
		}
	}
	r.t.Fatalf("step %d not finished", step)
	return contract.Event{}
}

func (r *run) ofType(typ string) []contract.Event {
	var out []contract.Event
	for _, ev := range r.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (r *run) conclusion() string {
	last := r.events[len(r.events)-1]
	if last.Type != contract.TypeJobFinished {
		r.t.Fatalf("last event %s: %s", last.Type, last.Message)
	}
	return last.Conclusion
}

// expect checks a step's outcome and conclusion.
func (r *run) expect(step int, outcome, conclusion string) {
	r.t.Helper()
	ev := r.finished(step)
	if ev.Outcome != outcome || ev.Conclusion != conclusion {
		r.t.Errorf("step %d: outcome %s conclusion %s, want %s %s\noutput: %s\nsystem: %s", step, ev.Outcome, ev.Conclusion, outcome, conclusion, r.output(step), r.system(step))
	}
}

func (r *run) raw() string {
	data, _ := os.ReadFile(r.layout.Events)
	return string(data)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runStep(script string) contract.Step { return contract.Step{Run: script} }

// writeFile writes a file under dir, creating directories.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}
