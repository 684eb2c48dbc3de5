package github

import (
	"fmt"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/forge"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// renderer writes a job's life into its book. Everything it writes is a
// function of the events and of Status facts that do not change, so a
// restarted shim renders exactly the same lines again.
type renderer struct {
	b       *book
	lastSeq int64
	end     *contract.Event // job_finished or infra_error
	outputs map[string]string
	exits   map[int]int // exit codes of failed steps, by plan index
}

func newRenderer(b *book) *renderer { return &renderer{b: b, exits: map[int]int{}} }

// refused fails the job in "Set up job", saying why.
func (r *renderer) refused(t time.Time, lines []string) {
	s := r.b.setup()
	s.start(t)
	for _, l := range lines {
		s.line(t, "##[error]"+l)
	}
	s.finish(t, protocol.ConclusionFailure)
	r.b.closeOpen(t, protocol.ConclusionSkipped)
}

// dispatched opens "Set up job": the job waits in Nomad's queue.
func (r *renderer) dispatched(job *nomad.Job, st nomad.Status) {
	s := r.b.setup()
	s.start(st.Submitted)
	for _, l := range nomad.DispatchedLines(job) {
		s.line(st.Submitted, l)
	}
	r.b.dirty = true
}

// debugLine writes a debug session's line where the job's last lines go.
func (r *renderer) debugLine(t time.Time, line string) {
	r.b.complete().line(t, line)
	r.b.dirty = true
}

// debugNote is the dispatch's line about a debug session (see
// task.debugRequest), kept in the job's record so a restarted shim
// writes it again.
func (r *renderer) debugNote(t time.Time, note string) {
	if note != "" {
		r.b.setup().line(t, note)
	}
}

func (r *renderer) placed(st nomad.Status) {
	r.b.setup().line(st.Placed, nomad.PlacedLine(st))
}

// event renders one event; ones already seen are ignored.
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
		if ev.Step == contract.JobLevel {
			r.jobLine(ev)
		} else if s := r.b.jobStep(ev.Step); s != nil {
			s.line(ev.Time, ev.Line)
		}
	case contract.TypeStepFinished:
		r.stepFinished(ev)
	case contract.TypeOutputs:
		r.outputs = ev.Outputs
	case contract.TypeJobFinished:
		r.end = &ev
		r.b.closeOpen(ev.Time, stepConclusions.Of(ev.Conclusion))
	case contract.TypeDebugSession, contract.TypeDebugEnded:
		// Written by the driver after the job's end: the connection line,
		// then how the session ended.
		r.debugLine(ev.Time, ev.Message)
	case contract.TypeInfraError:
		r.end = &ev
		r.b.closeOpen(ev.Time, protocol.ConclusionFailure)
		r.b.complete().line(ev.Time, "##[error]Infrastructure failure: "+ev.Message)
	}
}

// jobLine places a line of no step: before the first step in "Set up
// job", after it in "Complete job", where GitHub shows what runs after
// the steps (the cache saves of actions/cache). Either way it counts
// against the job's log budget.
func (r *renderer) jobLine(ev contract.Event) {
	s := r.b.complete()
	if !r.b.stepsStarted() {
		s = r.b.setup()
	}
	s.lineWithin(r.b.budget, ev.Time, ev.Line)
}

func (r *renderer) jobStarted(ev contract.Event, st nomad.Status) {
	s := r.b.setup()
	s.line(ev.Time, nomad.VMUpLine(ev, st))
	s.finish(ev.Time, protocol.ConclusionSuccess)
	r.b.dirty = true
}

func (r *renderer) stepStarted(ev contract.Event) {
	s := r.b.jobStep(ev.Step)
	if s == nil {
		return
	}
	if ev.Name != "" {
		s.name = ev.Name
	}
	s.start(ev.Time)
	r.b.dirty = true
}

func (r *renderer) stepFinished(ev contract.Event) {
	s := r.b.jobStep(ev.Step)
	if s == nil {
		return
	}
	if ev.ExitCode != nil && *ev.ExitCode != 0 && ev.Outcome != contract.Skipped && ev.Outcome != contract.Cancelled {
		r.exits[ev.Step] = *ev.ExitCode
		lineOnce(s, ev.Time, fmt.Sprintf("##[error]Process completed with exit code %d.", *ev.ExitCode))
	} else if ev.Reason != "" && ev.Outcome == contract.Failure {
		lineOnce(s, ev.Time, "##[error]"+ev.Reason)
	}
	s.finish(ev.Time, stepConclusions.Of(ev.Conclusion))
	r.b.dirty = true
}

// lineOnce writes a line unless the step's last line already says it.
func lineOnce(s *step, t time.Time, line string) {
	if n := len(s.lines); n > 0 && strings.HasSuffix(s.lines[n-1], strings.TrimPrefix(line, "##[error]")) {
		return
	}
	s.line(t, line)
}

// stepConclusions are a step's conclusions as the results service wants them.
var stepConclusions = forge.Conclusions[protocol.Conclusion]{
	Success: protocol.ConclusionSuccess, Failure: protocol.ConclusionFailure,
	Cancelled: protocol.ConclusionCancelled, Skipped: protocol.ConclusionSkipped,
}

// jobConclusions are a job's conclusions as completejob wants them.
var jobConclusions = forge.Conclusions[string]{Success: "succeeded", Failure: "failed", Cancelled: "canceled", Skipped: "skipped"}

// finished writes "Complete job" and returns the job's conclusion. t
// stamps lines no event dates.
func (r *renderer) finished(job *nomad.Job, st nomad.Status, t time.Time) string {
	if r.end != nil {
		t = r.end.Time
	}
	out := nomad.Outcome(r.end, st)
	res := jobConclusions.Of(out.Conclusion)
	if r.b.setup().status != protocol.StatusCompleted {
		r.b.setup().finish(t, protocol.ConclusionFailure)
	}
	r.b.closeOpen(t, conclusionFor(res))
	s := r.b.complete()
	s.start(t)
	if job != nil && out.HasProblem(r.end, st) {
		s.line(t, "##[error]The job ended without a result from the guest: "+out.Problem)
	}
	if job != nil && st.Stage == nomad.Finished {
		s.line(t, nomad.CleanupLine(job, st))
	}
	s.line(t, "Job "+res)
	s.finish(t, protocol.ConclusionSuccess)
	r.b.dirty = true
	return res
}

func conclusionFor(res string) protocol.Conclusion {
	if res == "canceled" {
		return protocol.ConclusionCancelled
	}
	return protocol.ConclusionFailure
}
