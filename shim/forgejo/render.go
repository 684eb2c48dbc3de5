package forgejo

import (
	"fmt"
	"sort"
	"strings"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/forge"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// renderer turns a job's life into log rows and step states. Everything
// it writes is a function of the events and of Status facts that do not
// change, so rendering a job again from the start (after a shim restart)
// gives exactly the same rows.
type renderer struct {
	j       *journal
	lastSeq int64
	started *contract.Event // job_started
	end     *contract.Event // job_finished or infra_error
	steps   map[int]*stepInfo
	order   []int
	lastRow string
}

type stepInfo struct {
	name       string
	conclusion string
	exitCode   *int
}

func newRenderer(j *journal) *renderer {
	return &renderer{j: j, steps: map[int]*stepInfo{}}
}

func (r *renderer) row(t time.Time, format string, args ...any) {
	line := format
	if len(args) > 0 {
		line = fmt.Sprintf(format, args...)
	}
	r.j.row(t, line)
	r.lastRow = line
}

// refused writes why a task could not run at all.
func (r *renderer) refused(t time.Time, lines []string) {
	for _, l := range lines {
		r.row(t, "%s", l)
	}
}

// dispatched writes the first lines of a dispatched job: it is queued
// until Nomad places it.
func (r *renderer) dispatched(job *nomad.Job, st nomad.Status) {
	for _, l := range nomad.DispatchedLines(job) {
		r.row(st.Submitted, "%s", l)
	}
}

// placed writes where the job was placed and how long it queued.
func (r *renderer) placed(st nomad.Status) {
	r.row(st.Placed, "%s", nomad.PlacedLine(st))
}

// event renders one event of the job's stream. Events at or below the last
// sequence number seen are ignored.
func (r *renderer) event(ev contract.Event, st nomad.Status) {
	debug := ev.Type == contract.TypeDebugSession || ev.Type == contract.TypeDebugEnded
	if ev.Seq <= r.lastSeq || (r.end != nil && !debug) {
		return
	}
	r.lastSeq = ev.Seq
	switch ev.Type {
	case contract.TypeJobStarted:
		r.jobStarted(ev, st)
	case contract.TypeStepStarted:
		r.stepStarted(ev)
	case contract.TypeLog:
		r.row(ev.Time, "%s", ev.Line)
	case contract.TypeStepFinished:
		r.stepFinished(ev)
	case contract.TypeStepSummary:
		r.summary(ev)
	case contract.TypeOutputs:
		r.j.closeSteps()
		r.j.setOutputs(ev.Outputs)
	case contract.TypeJobFinished:
		r.j.closeSteps()
		r.end = &ev
	case contract.TypeDebugSession, contract.TypeDebugEnded:
		// Written by the driver after the job's end (the checker refuses
		// them anywhere else): the connection line, then how it ended.
		r.row(ev.Time, "%s", ev.Message)
	case contract.TypeInfraError:
		r.j.closeSteps()
		r.end = &ev
		r.row(ev.Time, "Error: infrastructure failure: %s", ev.Message)
	}
}

func (r *renderer) jobStarted(ev contract.Event, st nomad.Status) {
	r.started = &ev
	r.j.setSteps(ev.Steps)
	r.row(ev.Time, "%s", nomad.VMUpLine(ev, st))
}

func (r *renderer) step(i int) *stepInfo {
	s := r.steps[i]
	if s == nil {
		s = &stepInfo{name: fmt.Sprintf("step %d", i+1)}
		r.steps[i] = s
		r.order = append(r.order, i)
	}
	return s
}

func (r *renderer) stepStarted(ev contract.Event) {
	s := r.step(ev.Step)
	if ev.Name != "" {
		s.name = ev.Name
	}
	r.j.stepStarted(ev.Step, ev.Time)
	r.lastRow = ""
}

func (r *renderer) stepFinished(ev contract.Event) {
	s := r.step(ev.Step)
	s.conclusion, s.exitCode = ev.Conclusion, ev.ExitCode
	exited := ev.ExitCode != nil && *ev.ExitCode != 0
	// A skipped step has nothing to say, and the guest already said
	// "The operation was canceled." for a cancelled one.
	if ev.Outcome != contract.Skipped && ev.Outcome != contract.Cancelled {
		if exited {
			r.rowOnce(ev.Time, fmt.Sprintf("Process completed with exit code %d.", *ev.ExitCode))
		}
		// A reason that only repeats the exit code adds nothing.
		if ev.Reason != "" && ev.Outcome != contract.Success && !(exited && strings.Contains(ev.Reason, "exit code")) {
			r.rowOnce(ev.Time, "Error: "+ev.Reason)
		}
	}
	r.j.stepFinished(ev.Step, results.Of(ev.Conclusion), ev.Time)
}

// rowOnce writes a line unless the step's last line already says it (the
// guest may have written it itself).
func (r *renderer) rowOnce(t time.Time, line string) {
	if strings.HasSuffix(r.lastRow, line) || strings.HasSuffix(r.lastRow, strings.TrimPrefix(line, "Error: ")) {
		return
	}
	r.row(t, "%s", line)
}

func (r *renderer) summary(ev contract.Event) {
	if strings.TrimSpace(ev.Markdown) == "" {
		return
	}
	r.row(ev.Time, "##[group]Step summary")
	for _, l := range strings.Split(strings.TrimRight(ev.Markdown, "\n"), "\n") {
		r.row(ev.Time, "%s", l)
	}
	r.row(ev.Time, "##[endgroup]")
}

// results are the forge's results for a step's or job's conclusion.
var results = forge.Conclusions[runnerv1.Result]{
	Success: runnerv1.Result_RESULT_SUCCESS, Failure: runnerv1.Result_RESULT_FAILURE,
	Cancelled: runnerv1.Result_RESULT_CANCELLED, Skipped: runnerv1.Result_RESULT_SKIPPED,
}

// finished writes the closing lines and records the result. t stamps
// lines that no event dates.
func (r *renderer) finished(job *nomad.Job, st nomad.Status, t time.Time) runnerv1.Result {
	r.j.closeSteps()
	if r.end != nil {
		t = r.end.Time
	}
	out := nomad.Outcome(r.end, st)
	res := results.Of(out.Conclusion)
	if out.HasProblem(r.end, st) {
		r.row(t, "Error: the job ended without a result from the guest: %s", out.Problem)
	}
	r.row(t, "%s", r.verdict(res, st))
	if counts := r.stepCounts(); counts != "" {
		r.row(t, "Steps: %s", counts)
	}
	if st.Stage == nomad.Finished {
		r.row(t, "%s", nomad.CleanupLine(job, st))
	}
	r.j.finish(res, t)
	return res
}

// verdict is the closing line. The time is the job's whole life in
// Nomad, queue and boot included, when both ends are known.
func (r *renderer) verdict(res runnerv1.Result, st nomad.Status) string {
	dur := ""
	switch {
	case r.end != nil && !st.Submitted.IsZero():
		dur = " in " + nomad.Round(r.end.Time.Sub(st.Submitted)).String()
	case r.end != nil && r.end.DurationMS > 0:
		dur = " in " + nomad.Round(time.Duration(r.end.DurationMS)*time.Millisecond).String()
	}
	switch res {
	case runnerv1.Result_RESULT_SUCCESS:
		return "Job succeeded" + dur
	case runnerv1.Result_RESULT_CANCELLED:
		return "Job cancelled" + dur
	}
	if failed := r.failedSteps(); len(failed) > 0 {
		return fmt.Sprintf("Job failed%s: %s", dur, strings.Join(failed, "; "))
	}
	return "Job failed" + dur
}

func (r *renderer) failedSteps() []string {
	var out []string
	for _, i := range r.order {
		s := r.steps[i]
		if s.conclusion != contract.Failure {
			continue
		}
		if s.exitCode != nil {
			out = append(out, fmt.Sprintf("step %q failed with exit code %d", s.name, *s.exitCode))
		} else {
			out = append(out, fmt.Sprintf("step %q failed", s.name))
		}
	}
	return out
}

// stepCounts is "2 succeeded, 1 failed, 1 skipped".
func (r *renderer) stepCounts() string {
	n := map[string]int{}
	for _, s := range r.steps {
		c := s.conclusion
		if c == "" {
			c = "unfinished"
		}
		n[c]++
	}
	words := map[string]string{contract.Success: "succeeded", contract.Failure: "failed", contract.Cancelled: "cancelled", contract.Skipped: "skipped", "unfinished": "unfinished"}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return rank(keys[a]) < rank(keys[b]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], words[k]))
	}
	return strings.Join(parts, ", ")
}

func rank(c string) int {
	for i, k := range []string{contract.Success, contract.Failure, contract.Cancelled, contract.Skipped} {
		if c == k {
			return i
		}
	}
	return 9
}
