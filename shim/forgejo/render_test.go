package forgejo

import (
	"strings"
	"testing"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

func intp(i int) *int { return &i }

// render runs events through a fresh renderer and returns the rows.
func render(evs []contract.Event, st nomad.Status) (*journal, []string, runnerv1.Result) {
	j := newJournal(0)
	r := newRenderer(j)
	for i, ev := range evs {
		ev.Seq = int64(i + 1)
		r.event(ev, st)
	}
	res := r.finished(&nomad.Job{ID: "job-1"}, st, time.Unix(0, 0))
	var rows []string
	for _, row := range j.pending {
		rows = append(rows, row.Content)
	}
	return j, rows, res
}

func TestStepRangesAndResults(t *testing.T) {
	evs := []contract.Event{
		{Type: contract.TypeJobStarted, Steps: 3},
		{Type: contract.TypeLog, Step: -1, Line: "job-level before"},
		{Type: contract.TypeStepStarted, Step: 0, Name: "one"},
		{Type: contract.TypeLog, Step: 0, Line: "1a"},
		{Type: contract.TypeLog, Step: 0, Line: "1b"},
		{Type: contract.TypeStepFinished, Step: 0, Outcome: "success", Conclusion: "success", ExitCode: intp(0)},
		{Type: contract.TypeLog, Step: -1, Line: "between"},
		{Type: contract.TypeStepStarted, Step: 1, Name: "two"},
		{Type: contract.TypeLog, Step: 1, Line: "Process completed with exit code 3."},
		{Type: contract.TypeStepFinished, Step: 1, Outcome: "failure", Conclusion: "success", ExitCode: intp(3)},
		{Type: contract.TypeStepStarted, Step: 2, Name: "three"},
		{Type: contract.TypeStepFinished, Step: 2, Outcome: "skipped", Conclusion: "skipped"},
		{Type: contract.TypeOutputs, Outputs: map[string]string{"k": "v"}},
		{Type: contract.TypeJobFinished, Conclusion: "success", DurationMS: 2000},
	}
	j, rows, res := render(evs, nomad.Status{Stage: nomad.Finished})
	if res != runnerv1.Result_RESULT_SUCCESS {
		t.Fatalf("result %v", res)
	}
	want := []struct {
		result runnerv1.Result
		rows   string
	}{
		{runnerv1.Result_RESULT_SUCCESS, "1a|1b|between"},
		{runnerv1.Result_RESULT_SUCCESS, "Process completed with exit code 3."}, // continue-on-error; the line is not doubled
		{runnerv1.Result_RESULT_SKIPPED, ""},
	}
	for i, w := range want {
		s := j.steps[i]
		got := strings.Join(rows[s.LogIndex:s.LogIndex+s.LogLength], "|")
		if s.Result != w.result || got != w.rows {
			t.Errorf("step %d: %v %q, want %v %q", i, s.Result, got, w.result, w.rows)
		}
	}
	if j.outputs["k"] != "v" || !strings.HasPrefix(rows[len(rows)-3], "Job succeeded in 2s") {
		t.Fatalf("outputs %v, rows %q", j.outputs, rows)
	}
}

func TestJobResults(t *testing.T) {
	started := contract.Event{Type: contract.TypeJobStarted, Steps: 1}
	step := contract.Event{Type: contract.TypeStepStarted, Step: 0, Name: "s"}
	tests := []struct {
		name string
		evs  []contract.Event
		st   nomad.Status
		want runnerv1.Result
		line string
	}{
		{"failure", []contract.Event{started, step, {Type: contract.TypeStepFinished, Step: 0, Outcome: "failure", Conclusion: "failure", ExitCode: intp(1)}, {Type: contract.TypeJobFinished, Conclusion: "failure"}},
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitJobFailed}, runnerv1.Result_RESULT_FAILURE, `Job failed: step "s" failed with exit code 1`},
		{"cancelled", []contract.Event{started, step, {Type: contract.TypeLog, Line: "Error: The operation was canceled."},
			{Type: contract.TypeStepFinished, Step: 0, Outcome: "cancelled", Conclusion: "cancelled", ExitCode: intp(130), Reason: "the job was cancelled"},
			{Type: contract.TypeJobFinished, Conclusion: "cancelled"}},
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitCancelled}, runnerv1.Result_RESULT_CANCELLED, "Job cancelled"},
		{"infra error", []contract.Event{{Type: contract.TypeInfraError, Message: "boot timeout after 5m"}},
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitInfrastructure}, runnerv1.Result_RESULT_FAILURE, "Error: infrastructure failure: boot timeout after 5m"},
		{"lost node", []contract.Event{started, step},
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitInfrastructure, Problem: "the Nomad client running the job was lost"}, runnerv1.Result_RESULT_FAILURE, "without a result from the guest: the Nomad client running the job was lost"},
		{"cancelled before placement", nil,
			nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitCancelled, Problem: "cancelled before it was placed"}, runnerv1.Result_RESULT_CANCELLED, "Job cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, rows, res := render(tt.evs, tt.st)
			if res != tt.want || !strings.Contains(strings.Join(rows, "\n"), tt.line) || strings.Contains(strings.Join(rows, "\n"), "exit code 130") {
				t.Fatalf("result %v rows:\n%s", res, strings.Join(rows, "\n"))
			}
			for _, s := range j.steps {
				if s.Result == runnerv1.Result_RESULT_UNSPECIFIED {
					t.Fatalf("step %d left open", s.Id)
				}
			}
		})
	}
}

func TestRenderingAgainSkipsStoredRows(t *testing.T) {
	evs := script{steps: []scriptStep{{name: "a", lines: manyLines(10)}}}.events()
	st := nomad.Status{Stage: nomad.Finished}
	_, all, _ := render(evs, st)
	j := newJournal(7)
	r := newRenderer(j)
	for i, ev := range evs {
		ev.Seq = int64(i + 1)
		r.event(ev, st)
	}
	r.finished(&nomad.Job{ID: "job-1"}, st, time.Unix(0, 0))
	index, rows := j.unsent(1000)
	if index != 7 || len(rows) != len(all)-7 || rows[0].Content != all[7] {
		t.Fatalf("unsent from %d: %d rows, first %q; want from 7: %d rows, first %q", index, len(rows), rows[0].Content, len(all)-7, all[7])
	}
	if s := j.steps[0]; s.LogIndex != 1 || s.LogLength != 10 { // row 0 is "VM up …"
		t.Fatalf("step range [%d,+%d) counts the skipped rows wrong", s.LogIndex, s.LogLength)
	}
}

func TestAckBelowWhatWasStored(t *testing.T) {
	j := newJournal(0)
	for _, l := range []string{"a", "b", "c", "d"} {
		j.row(time.Now(), l)
	}
	j.acked(3)
	if lost := j.acked(1); lost != 2 {
		t.Fatalf("lost %d", lost)
	}
	index, rows := j.unsent(10)
	if index != 1 || len(rows) != 3 || rows[2].Content != "d" || !strings.Contains(rows[0].Content, "lost") {
		t.Fatalf("unsent %d %v", index, rows)
	}
}

func TestBatchesAreBounded(t *testing.T) {
	j := newJournal(0)
	big := strings.Repeat("x", 64<<10)
	for range 40 {
		j.row(time.Now(), big)
	}
	if _, rows := j.unsent(logBatch); len(rows) != 16 {
		t.Fatalf("a batch of %d rows of 64 KiB, want 16 (1 MiB)", len(rows))
	}
	j.row(time.Now(), "small")
	if _, rows := j.unsent(3); len(rows) != 3 {
		t.Fatalf("a batch of %d rows, want 3", len(rows))
	}
}
