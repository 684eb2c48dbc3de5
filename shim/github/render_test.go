package github

import (
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func exit(n int) *int { return &n }

// render runs a job of three steps through the renderer.
func render(t *testing.T, evs []contract.Event, st nomad.Status) (*book, string) {
	t.Helper()
	m := loadJob(t)
	b := newBook(m.JobID, m.Steps)
	r := newRenderer(b)
	job := &nomad.Job{ID: "solstice-solstice-test/dispatch-1", Label: "solstice-test"}
	st.Submitted, st.Placed = at(0), at(2)
	r.dispatched(job, st)
	r.placed(st)
	for i, ev := range evs {
		ev.Seq = int64(i + 1)
		r.event(ev, st)
	}
	return b, r.finished(job, st, at(100))
}

func TestRenderSucceededJob(t *testing.T) {
	evs := []contract.Event{
		{Type: contract.TypeJobStarted, Time: at(10), Steps: 3, Agent: "0.1.0"},
		{Type: contract.TypeStepStarted, Time: at(11), Step: 0, Name: "Run actions/checkout@v4"},
		{Type: contract.TypeStepFinished, Time: at(12), Step: 0, Outcome: contract.Success, Conclusion: contract.Success},
		{Type: contract.TypeStepStarted, Time: at(13), Step: 1, Name: "Build"},
		{Type: contract.TypeLog, Time: at(14), Step: 1, Line: "compiling"},
		{Type: contract.TypeStepFinished, Time: at(15), Step: 1, Outcome: contract.Failure, Conclusion: contract.Success, ExitCode: exit(2)},
		{Type: contract.TypeStepStarted, Time: at(16), Step: 2, Name: "Run echo ***"},
		{Type: contract.TypeLog, Time: at(16), Step: 2, Line: "***"},
		{Type: contract.TypeStepFinished, Time: at(17), Step: 2, Outcome: contract.Success, Conclusion: contract.Success, ExitCode: exit(0)},
		{Type: contract.TypeOutputs, Time: at(18), Outputs: map[string]string{"probe": "42"}},
		{Type: contract.TypeJobFinished, Time: at(18), Conclusion: contract.Success},
	}
	b, res := render(t, evs, nomad.Status{Stage: nomad.Finished})
	if res != "succeeded" {
		t.Errorf("result = %q", res)
	}
	wantNames := []string{"Set up job", "Run actions/checkout@v4", "Build", "Run echo ***", "Complete job"}
	for i, s := range b.steps {
		if s.name != wantNames[i] || s.number != i+1 || s.status != protocol.StatusCompleted || s.conclusion != protocol.ConclusionSuccess {
			t.Errorf("step %d = %+v", i, s)
		}
	}
	build := b.steps[2]
	if got := string(build.log()); !strings.Contains(got, "2026-11-26T10:00:14.0000000Z compiling\n") || !strings.Contains(got, "##[error]Process completed with exit code 2.") {
		t.Errorf("build log = %q", got)
	}
	if !strings.Contains(string(b.setup().log()), "VM up 8s after placement") {
		t.Errorf("set-up log = %q", b.setup().log())
	}
	if b.steps[1].id != "11111111-1111-1111-1111-111111111111" {
		t.Errorf("a job step must keep the message's id, got %q", b.steps[1].id)
	}
}

func TestRenderEnds(t *testing.T) {
	started := []contract.Event{
		{Type: contract.TypeJobStarted, Time: at(10), Steps: 3},
		{Type: contract.TypeStepStarted, Time: at(11), Step: 0},
		{Type: contract.TypeStepFinished, Time: at(12), Step: 0, Outcome: contract.Success, Conclusion: contract.Success},
		{Type: contract.TypeStepStarted, Time: at(13), Step: 1},
	}
	tests := []struct {
		name     string
		evs      []contract.Event
		st       nomad.Status
		want     string
		build    protocol.Conclusion
		complete string
	}{
		{"failed step", append(started[:4:4], contract.Event{Type: contract.TypeStepFinished, Time: at(14), Step: 1, Outcome: contract.Failure, Conclusion: contract.Failure, ExitCode: exit(3)},
			contract.Event{Type: contract.TypeJobFinished, Time: at(15), Conclusion: contract.Failure}),
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitJobFailed}, "failed", protocol.ConclusionFailure, "Job failed"},
		{"cancelled by GitHub", started, nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitCancelled}, "canceled", protocol.ConclusionCancelled, "Job canceled"},
		{"VM lost", started, nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitInfrastructure, Problem: "the Nomad client running the job was lost"},
			"failed", protocol.ConclusionFailure, "without a result from the guest: the Nomad client running the job was lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, res := render(t, tt.evs, tt.st)
			if res != tt.want {
				t.Errorf("result = %q, want %q", res, tt.want)
			}
			if c := b.steps[2].conclusion; c != tt.build {
				t.Errorf("build step conclusion = %d, want %d", c, tt.build)
			}
			if s := b.steps[3]; s.status != protocol.StatusCompleted || s.conclusion != protocol.ConclusionSkipped {
				t.Errorf("the step that never ran = %+v, want completed and skipped", s)
			}
			if !strings.Contains(string(b.complete().log()), tt.complete) {
				t.Errorf("complete-job log = %q, want %q", b.complete().log(), tt.complete)
			}
		})
	}
}

func TestRenderIsRepeatable(t *testing.T) {
	evs := []contract.Event{
		{Type: contract.TypeJobStarted, Time: at(10), Steps: 3},
		{Type: contract.TypeStepStarted, Time: at(11), Step: 0},
		{Type: contract.TypeLog, Time: at(11), Step: 0, Line: "a\nb"},
	}
	st := nomad.Status{Stage: nomad.Running}
	b1, _ := render(t, evs, st)
	b2, _ := render(t, evs, st)
	for i := range b1.steps {
		if b1.steps[i].id != b2.steps[i].id || string(b1.steps[i].log()) != string(b2.steps[i].log()) {
			t.Errorf("step %d differs between two renderings: %q vs %q", i, b1.steps[i].log(), b2.steps[i].log())
		}
	}
	if got := len(b1.steps[1].lines); got != 2 {
		t.Errorf("a two-line log event gave %d lines", got)
	}
}

// Lines of no step go to "Set up job" before the first step and to
// "Complete job" after it (actions/cache saves there), within the job's
// log budget.
func TestRenderJobLevelLines(t *testing.T) {
	evs := []contract.Event{
		{Type: contract.TypeJobStarted, Time: at(10), Steps: 3, Agent: "0.1.0"},
		{Type: contract.TypeLog, Time: at(10), Step: contract.JobLevel, Line: "early notice"},
		{Type: contract.TypeStepStarted, Time: at(11), Step: 0, Name: "Run actions/cache@v4"},
		{Type: contract.TypeStepFinished, Time: at(12), Step: 0, Outcome: contract.Success, Conclusion: contract.Success},
		{Type: contract.TypeLog, Time: at(13), Step: contract.JobLevel, Line: "Post job cleanup: save cache k"},
		{Type: contract.TypeLog, Time: at(14), Step: contract.JobLevel, Line: "Cache saved with key: k (10 bytes)"},
		{Type: contract.TypeJobFinished, Time: at(15), Conclusion: contract.Success},
	}
	b, _ := render(t, evs, nomad.Status{Stage: nomad.Finished})
	if setup := string(b.setup().log()); !strings.Contains(setup, " early notice\n") {
		t.Errorf("set-up log = %q", setup)
	}
	complete := string(b.complete().log())
	save := strings.Index(complete, " Cache saved with key: k (10 bytes)\n")
	if !strings.Contains(complete, " Post job cleanup: save cache k\n") || save < 0 || save > strings.Index(complete, "Job succeeded") {
		t.Errorf("complete-job log = %q", complete)
	}
	before := b.budget.left
	newRenderer(b).jobLine(contract.Event{Time: at(16), Step: contract.JobLevel, Line: strings.Repeat("x", 100)})
	if b.budget.left >= before {
		t.Error("a job-level line did not count against the job's log budget")
	}
}
