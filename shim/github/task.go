package github

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/retry"
)

// task is one acquired job from acquisition (or resumption) to its
// conclusion on GitHub.
type task struct {
	sh    *Shim
	rn    *runner
	rec   *Record
	msg   *protocol.JobMessage
	jc    *protocol.JobClient
	job   *nomad.Job // nil until dispatched; only the task's goroutine sets it
	r     *renderer
	rep   *reporter
	log   hclog.Logger // never replaced: the renew and poll goroutines use it too
	label string

	cancelOnce sync.Once
	cancelled  chan struct{} // GitHub cancelled the job
	lostOnce   sync.Once
	lost       chan struct{} // the lock could not be renewed
	concluded  bool          // GitHub has the conclusion, or will never take it
	debug      *debuglock.Guard
}

func (sh *Shim) newTask(rn *runner, rec *Record, msg *protocol.JobMessage) (*task, error) {
	jc, err := protocol.NewJobClient(msg, rec.RunServiceURL, sh.cfg.HTTP)
	if err != nil {
		return nil, err
	}
	b := newBook(msg.JobID, msg.Steps)
	log := sh.log.With("runner", rn.name, "github_job", msg.JobID, "name", jobName(msg))
	t := &task{
		sh: sh, rn: rn, rec: rec, msg: msg, jc: jc, r: newRenderer(b), log: log, label: rn.label,
		cancelled: make(chan struct{}), lost: make(chan struct{}),
	}
	t.rep = &reporter{sh: sh, jc: jc, rec: rec, log: log, b: b}
	return t, nil
}

// cancel is GitHub's JobCancellation.
func (t *task) cancel() {
	t.cancelOnce.Do(func() {
		t.log.Info("GitHub cancelled the job")
		close(t.cancelled)
	})
}

func (t *task) loseLock(why error) {
	t.lostOnce.Do(func() {
		t.log.Error("the job's lock could not be renewed; GitHub has given the job up, stopping it", "error", why)
		t.sh.metrics.lockLost()
		close(t.lost)
	})
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// run sees the job through. A job the shim cannot finish now (it is
// stopping) keeps its record, so a restarted shim picks it up.
func (t *task) run(ctx context.Context, job *nomad.Job) {
	t.sh.metrics.jobState(t.msg.JobID, stateRunning)
	defer t.sh.metrics.jobState(t.msg.JobID, "")
	t.job = job
	if !t.holdsLock(ctx) {
		return
	}
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go t.renew(renewCtx)
	if t.job == nil && !t.dispatch(ctx) {
		return
	}
	t.watch(ctx)
}

// holdsLock renews the lock once before anything runs, as the official
// runner does before starting its worker: a resumed job GitHub has
// already finished or given up must not run again.
func (t *task) holdsLock(ctx context.Context) bool {
	_, err := t.renewOnce(ctx, t.lockedUntil())
	switch {
	case err == nil:
		return true
	case ctx.Err() != nil:
		return false
	}
	t.log.Warn("GitHub no longer holds the job for this runner; dropping it", "error", err)
	if t.job != nil {
		tr := t.tracker()
		if tr.Cancel(ctx) == nil && tr.Finish(ctx) == nil {
			tr.Log.Info("stopped the job's Nomad job and removed its secrets")
		}
	}
	t.forget(ctx)
	t.concluded = true
	return false
}

// tracker sees the dispatched job through Nomad.
func (t *task) tracker() *nomad.Tracker {
	// The plan has one step per step of GitHub's message (prepare refuses
	// a job with a step it cannot plan), so the message gives its count.
	return &nomad.Tracker{Nomad: t.sh.nomad, Job: t.job, Timing: t.sh.cfg.Timing.Watch, Log: t.log.With("job", t.job.ID), Steps: len(t.msg.Steps)}
}

// dispatch prepares and dispatches the job; it reports whether there is a
// job to watch (a job that cannot run, or was cancelled first, is
// completed here).
func (t *task) dispatch(ctx context.Context) bool {
	dbg, note := t.debugRequest(ctx)
	t.rec.DebugNote = note
	req, err := prepare(t.msg, t.label, t.sh.instance, dbg)
	if err == nil {
		err = t.tryDispatch(ctx, req)
	}
	var u *unrunnable
	switch {
	case ctx.Err() != nil:
		return false
	case errors.As(err, &u):
		t.log.Info("refusing the job", "why", u.Error())
		t.rep.with(func(*book) { t.r.refused(time.Now(), u.lines) })
		t.conclude(ctx, nil, nomad.Status{})
		return false
	case err != nil: // cancelled or lock lost before the dispatch
		t.conclude(ctx, nil, nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitCancelled})
		return false
	}
	t.sh.metrics.dispatched(time.Since(t.rec.Acquired))
	t.rec.NomadJob = t.job.ID
	if err := t.sh.cfg.Store.SaveJob(ctx, t.rec); err != nil {
		t.log.Warn("cannot record the job's dispatch", "job", t.job.ID, "error", err)
	}
	return true
}

// errStopped is a job cancelled, or its lock lost, before its dispatch.
var errStopped = errors.New("the job was cancelled before it was dispatched")

// tryDispatch dispatches, retrying a few times: a Nomad hiccup should not
// fail the user's job.
func (t *task) tryDispatch(ctx context.Context, req nomad.Request) error {
	backoff := retry.NewBackoff(t.sh.cfg.Timing.RetryMin, t.sh.cfg.Timing.RetryMax)
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if isClosed(t.cancelled) || isClosed(t.lost) {
			return errStopped
		}
		if t.job, err = t.sh.nomad.Dispatch(ctx, req); err == nil {
			return nil
		}
		d := backoff.Next()
		t.log.Warn("Nomad did not take the job; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
	return refuse("The job cannot run: Nomad did not take it:", "  "+err.Error())
}

// watch follows the dispatched job to its end and reports it.
func (t *task) watch(ctx context.Context) {
	tr := t.tracker()
	st, err := tr.ReadStatus(ctx)
	if err != nil {
		return
	}
	t.rep.with(func(*book) { t.r.dispatched(t.job, st); t.r.debugNote(st.Submitted, t.rec.DebugNote) })
	repCtx, stopRep := context.WithCancel(ctx)
	repDone := make(chan struct{})
	go func() { defer close(repDone); t.rep.run(repCtx) }()
	stopReporting := func() { stopRep(); <-repDone }
	defer stopReporting()
	go t.stopOnCancel(repCtx, tr)
	if st, err = tr.WaitPlaced(ctx, st); err != nil {
		return
	}
	if st.AllocID != "" {
		t.rep.with(func(*book) { t.r.placed(st) })
		err := tr.Follow(ctx, func(ctx context.Context, ev contract.Event) error {
			if (ev.Type == contract.TypeDebugSession || ev.Type == contract.TypeDebugEnded) && !t.onDebugEvent(ctx, ev) {
				return nil
			}
			t.rep.with(func(*book) { t.r.event(ev, tr.Latest()) })
			return nil
		})
		if err != nil {
			return
		}
	}
	if st, err = tr.WaitEnd(ctx); err != nil {
		return
	}
	stopReporting()
	if t.conclude(ctx, t.job, st) {
		// The record is gone now; a Finish that fails here is retried by
		// the next shim, which cleans up dispatches without a record.
		if err := tr.Finish(ctx); err != nil {
			tr.Log.Error("could not remove the job's secrets; the next shim start removes them", "error", err)
		}
	}
}

// stopOnCancel stops the Nomad job when GitHub cancels it or its lock is
// lost.
func (t *task) stopOnCancel(ctx context.Context, tr *nomad.Tracker) {
	select {
	case <-ctx.Done():
		return
	case <-t.cancelled:
	case <-t.lost:
	}
	if err := tr.Cancel(ctx); err == nil {
		tr.Log.Info("stopped the Nomad job")
	}
}

// conclude writes "Complete job", completes the job on GitHub and forgets
// it. It reports whether the job is over for good.
func (t *task) conclude(ctx context.Context, job *nomad.Job, st nomad.Status) bool {
	if isClosed(t.lost) {
		t.log.Warn("not completing the job: GitHub gave it up when its lock expired")
		t.forget(ctx)
		t.concluded = true
		return true
	}
	var res string
	var outputs map[string]string
	t.rep.with(func(*book) {
		res = t.r.finished(job, st, time.Now())
		outputs = t.r.outputs
	})
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.lost:
			cancel()
		case <-fctx.Done():
		}
	}()
	err := t.rep.final(fctx, res, outputs)
	switch {
	case ctx.Err() != nil:
		return false
	case errors.Is(err, protocol.ErrJobGone):
		t.log.Warn("GitHub no longer knows the job; dropping it", "error", err)
	case err != nil:
		t.log.Error("giving up completing the job on GitHub", "conclusion", res, "error", err)
	default:
		t.log.Info("job completed", "conclusion", res)
		t.sh.metrics.finished(res)
	}
	t.forget(ctx)
	t.concluded = true
	return true
}

// forget deletes the job's record, retrying a little: a record left
// behind makes the next shim start ask GitHub about the job again.
func (t *task) forget(ctx context.Context) {
	backoff := retry.NewBackoff(t.sh.cfg.Timing.RetryMin, t.sh.cfg.Timing.RetryMax)
	for attempt := 0; attempt < 4; attempt++ {
		err := t.sh.cfg.Store.DeleteJob(ctx, t.rec.JobID)
		if err == nil {
			return
		}
		d := backoff.Next()
		t.log.Warn("cannot delete the job's record; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return
		}
	}
}
