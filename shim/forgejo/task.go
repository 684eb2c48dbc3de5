package forgejo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// task is one forge task from fetch (or resume) to its final report.
type task struct {
	rt      *Runner
	id      int64
	job     *nomad.Job
	j       *journal
	r       *renderer
	rep     *reporter
	log     hclog.Logger
	fetched time.Time // zero for a resumed task
	// planSteps is the step count of the plan this shim dispatched, to
	// check the guest's events against; zero for a resumed task, whose
	// count the Tracker takes from the job (read back from Nomad).
	planSteps int

	// debug is the job's side of the repository's debug lock.
	debug *debuglock.Guard

	mu    sync.Mutex
	tr    *nomad.Tracker // made once the job is dispatched
	steps bool           // the first step has started
}

func (rt *Runner) newTask(id int64, base int64) *task {
	j := newJournal(base)
	t := &task{rt: rt, id: id, j: j, r: newRenderer(j), log: rt.log.With("task", id)}
	t.rep = newReporter(rt.forge, id, j, rt)
	return t
}

func (t *task) setState(s string) { t.rt.metrics.taskState(t.id, s) }

// runTask runs a task the forge just handed out.
func (rt *Runner) runTask(ctx context.Context, pt *runnerv1.Task, catalog map[string]string, fetched time.Time) {
	t := rt.newTask(pt.Id, 0)
	t.fetched = fetched
	t.setState(statePreparing)
	defer t.setState("")
	t.j.setStarted(fetched)
	dbg, note := rt.debugRequest(ctx, pt)
	p, err := prepare(pt, catalog, rt.instance, dbg, rt.cfg.Cache)
	var u *unrunnable
	if errors.As(err, &u) {
		t.refuse(ctx, u.steps, u.lines)
		return
	}
	if note != "" {
		t.r.row(time.Now(), "%s", note)
	}
	t.j.setSteps(p.steps)
	t.planSteps = p.steps
	job, err := rt.nomad.Dispatch(ctx, p.req)
	if err != nil {
		t.refuse(ctx, p.steps, []string{"The job cannot run: Nomad did not take it:", "  " + err.Error()})
		return
	}
	rt.metrics.dispatched(time.Since(fetched))
	t.job = job
	t.log = t.log.With("job", job.ID)
	t.watch(ctx)
}

// refuse fails a task that cannot run, saying why.
func (t *task) refuse(ctx context.Context, steps int, lines []string) {
	t.log.Info("refusing a task", "why", strings.Join(lines, " "))
	now := time.Now()
	t.j.setSteps(steps)
	t.r.refused(now, lines)
	t.j.finish(runnerv1.Result_RESULT_FAILURE, now)
	t.report(ctx, runnerv1.Result_RESULT_FAILURE)
}

// report sends the final report.
func (t *task) report(ctx context.Context, res runnerv1.Result) error {
	t.setState(stateReporting)
	err := t.rep.final(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("the final report did not reach the forge", "error", err)
		}
		return err
	}
	t.rt.metrics.taskResult(resultNames[res])
	t.log.Info("task finished", "result", resultNames[res])
	return nil
}

// watch follows a dispatched job to its end and reports it.
func (t *task) watch(ctx context.Context) {
	tr := t.tracker()
	st, err := tr.ReadStatus(ctx)
	if err != nil {
		return // the runner is stopping; a restarted one resumes
	}
	t.j.setStarted(st.Submitted)
	t.r.dispatched(t.job, st)
	t.rep.start(ctx)
	defer t.rep.stopReporting()
	watching, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go t.cancelOnForgeDone(watching)
	if st, err = tr.WaitPlaced(ctx, st); err != nil {
		return
	}
	if st.AllocID != "" {
		t.r.placed(st)
		if err := tr.Follow(ctx, t.onEvent); err != nil {
			return
		}
	}
	if st, err = tr.WaitEnd(ctx); err != nil {
		return
	}
	t.rep.stopReporting()
	res := t.r.finished(t.job, st, time.Now())
	err = t.report(ctx, res)
	if err == nil || errors.Is(err, ErrTaskGone) {
		t.finishJob(ctx)
	}
}

func stageState(s nomad.Stage) string {
	switch s {
	case nomad.Queued:
		return stateQueued
	case nomad.Booting:
		return stateBooting
	case nomad.Running:
		return stateRunning
	}
	return stateReporting
}

// cancelOnForgeDone stops the job when the forge says the task is over.
func (t *task) cancelOnForgeDone(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-t.rep.forgeDone:
	}
	if t.tracker().Cancel(ctx) == nil {
		t.log.Info("stopped the job: the forge cancelled the task")
	}
}

// onEvent renders one event of the job's stream, once the journal has
// room for it.
func (t *task) onEvent(ctx context.Context, ev contract.Event) error {
	if err := t.j.waitRoom(ctx); err != nil {
		return err
	}
	if ev.Type == contract.TypeStepStarted {
		t.firstStep()
	}
	if (ev.Type == contract.TypeDebugSession || ev.Type == contract.TypeDebugEnded) && !t.onDebugEvent(ctx, ev) {
		return nil
	}
	t.r.event(ev, t.tracker().Latest())
	return nil
}

func (t *task) firstStep() {
	t.mu.Lock()
	first := !t.steps
	t.steps = true
	t.mu.Unlock()
	if first && !t.fetched.IsZero() {
		t.rt.metrics.firstStepStarted(time.Since(t.fetched))
	}
}

// tracker sees the dispatched job through Nomad.
func (t *task) tracker() *nomad.Tracker {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tr == nil {
		tm := t.rt.cfg.Timing
		t.tr = &nomad.Tracker{
			Nomad: t.rt.nomad, Job: t.job, Log: t.log, Steps: t.planSteps,
			Timing:   nomad.Timing{Status: tm.Status, NoEvent: tm.NoEvent, EndWait: tm.EndWait, RetryMin: tm.RetryMin, RetryMax: tm.RetryMax},
			OnStatus: func(st nomad.Status) { t.setState(stageState(st.Stage)) },
		}
	}
	return t.tr
}

// finishJob removes what the job left in Nomad (its secrets), which also
// takes it off the in-flight list.
func (t *task) finishJob(ctx context.Context) {
	if err := t.tracker().Finish(ctx); err != nil && ctx.Err() == nil {
		t.log.Error("could not clean up the job; a restarted shim will report it again", "job", t.job.ID, "error", err)
	}
}
