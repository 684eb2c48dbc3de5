package forgejo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/shim/dispatch"
	"github.com/solstice-ci/solstice/shim/watch"
)

// task is one forge task from fetch (or resume) to its final report.
type task struct {
	rt      *Runner
	id      int64
	job     *dispatch.Job
	j       *journal
	r       *renderer
	rep     *reporter
	log     hclog.Logger
	fetched time.Time // zero for a resumed task

	mu     sync.Mutex
	status watch.Status // the newest status read
	steps  bool         // the first step has started
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
	p, err := prepare(pt, catalog, rt.instance)
	var u *unrunnable
	if errors.As(err, &u) {
		t.refuse(ctx, u.steps, u.lines)
		return
	}
	t.j.setSteps(p.steps)
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
	st, err := t.readStatus(ctx)
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
	if st, err = t.waitPlaced(ctx, st); err != nil {
		return
	}
	if st.AllocID != "" {
		t.r.placed(st)
		if err := t.follow(ctx); err != nil {
			return
		}
	}
	if st, err = t.waitEnd(ctx); err != nil {
		return
	}
	t.rep.stopReporting()
	res := t.r.finished(t.job, st, time.Now())
	err = t.report(ctx, res)
	if err == nil || errors.Is(err, ErrTaskGone) {
		t.finishJob(ctx)
	}
}

// readStatus reads the job's status, retrying while Nomad is unreachable.
func (t *task) readStatus(ctx context.Context) (watch.Status, error) {
	retry := watch.NewBackoff(t.rt.cfg.Timing.RetryMin, t.rt.cfg.Timing.RetryMax)
	for {
		st, err := t.rt.nomad.Status(ctx, t.job)
		if err == nil {
			t.mu.Lock()
			t.status = st
			t.mu.Unlock()
			t.setState(stageState(st.Stage))
			return st, nil
		}
		d := retry.Next()
		t.log.Warn("cannot read the job's status; retrying", "in", d, "error", err)
		if !watch.Sleep(ctx, d) {
			return watch.Status{}, ctx.Err()
		}
	}
}

func stageState(s dispatch.Stage) string {
	switch s {
	case dispatch.Queued:
		return stateQueued
	case dispatch.Booting:
		return stateBooting
	case dispatch.Running:
		return stateRunning
	}
	return stateReporting
}

func (t *task) latest() watch.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// waitPlaced waits while the job is queued.
func (t *task) waitPlaced(ctx context.Context, st watch.Status) (watch.Status, error) {
	for st.Stage == dispatch.Queued {
		if !watch.Sleep(ctx, t.rt.cfg.Timing.Status) {
			return st, ctx.Err()
		}
		var err error
		if st, err = t.readStatus(ctx); err != nil {
			return st, err
		}
	}
	return st, nil
}

// cancelOnForgeDone stops the job when the forge says the task is over.
func (t *task) cancelOnForgeDone(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-t.rep.forgeDone:
	}
	retry := watch.NewBackoff(t.rt.cfg.Timing.RetryMin, t.rt.cfg.Timing.RetryMax)
	for {
		err := t.rt.nomad.Cancel(ctx, t.job)
		if err == nil {
			t.log.Info("stopped the job: the forge cancelled the task")
			return
		}
		d := retry.Next()
		t.log.Warn("cannot stop the job yet; retrying", "in", d, "error", err)
		if !watch.Sleep(ctx, d) {
			return
		}
	}
}

// follow renders the job's events until the last one. A job whose task
// ended without writing it (the VM or node died) is given NoEvent to
// deliver what it wrote, then left.
func (t *task) follow(ctx context.Context) error {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- t.rt.nomad.Follow(fctx, t.latest(), 0, t.onLine(fctx)) }()
	tick := time.NewTicker(t.rt.cfg.Timing.Status)
	defer tick.Stop()
	var endedAt time.Time
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				t.log.Warn("following the job's events failed", "error", err)
			}
			return nil
		case <-tick.C:
			st, err := t.rt.nomad.Status(ctx, t.job)
			if err != nil {
				continue
			}
			t.setStatus(st)
			if st.Stage != dispatch.Finished {
				continue
			}
			if endedAt.IsZero() {
				endedAt = time.Now()
			} else if time.Since(endedAt) > t.rt.cfg.Timing.NoEvent {
				stop()
			}
		}
	}
}

func (t *task) setStatus(st watch.Status) {
	t.mu.Lock()
	t.status = st
	t.mu.Unlock()
	t.setState(stageState(st.Stage))
}

// onLine renders one line of the events file.
func (t *task) onLine(ctx context.Context) func([]byte, int64) error {
	return func(line []byte, _ int64) error {
		ev, err := events.Decode(line)
		if err != nil {
			t.log.Warn("skipping a line of the events file", "error", err)
			return nil
		}
		if err := t.j.waitRoom(ctx); err != nil {
			return err
		}
		if ev.Type == events.TypeStepStarted {
			t.firstStep()
		}
		t.r.event(ev, t.latest())
		if ev.Terminal() {
			return dispatch.ErrEnded
		}
		return nil
	}
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

// waitEnd waits, up to EndWait, for the job's task to stop (the VM powers
// off after its last event) and returns the final status.
func (t *task) waitEnd(ctx context.Context) (watch.Status, error) {
	deadline := time.Now().Add(t.rt.cfg.Timing.EndWait)
	for {
		st, err := t.readStatus(ctx)
		if err != nil {
			return st, err
		}
		if st.Stage == dispatch.Finished || time.Now().After(deadline) {
			return st, nil
		}
		if !watch.Sleep(ctx, t.rt.cfg.Timing.Status) {
			return st, ctx.Err()
		}
	}
}

// finishJob removes what the job left in Nomad (its secrets), which also
// takes it off the in-flight list.
func (t *task) finishJob(ctx context.Context) {
	retry := watch.NewBackoff(t.rt.cfg.Timing.RetryMin, t.rt.cfg.Timing.RetryMax)
	for attempt := 0; attempt < 5; attempt++ {
		err := t.rt.nomad.Finish(ctx, t.job)
		if err == nil {
			return
		}
		d := retry.Next()
		t.log.Warn("cannot clean up the job yet; retrying", "in", d, "error", err)
		if !watch.Sleep(ctx, d) {
			return
		}
	}
	t.log.Error("could not clean up the job; a restarted shim will report it again", "job", t.job.ID)
}
