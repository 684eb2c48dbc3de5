package github

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/shim/dispatch"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/watch"
)

// task is one acquired job from acquisition (or resumption) to its
// conclusion on GitHub.
type task struct {
	sh    *Shim
	rn    *runner
	rec   *Record
	msg   *protocol.JobMessage
	jc    *protocol.JobClient
	job   *dispatch.Job // nil until dispatched
	r     *renderer
	rep   *reporter
	log   hclog.Logger
	label string

	cancelOnce sync.Once
	cancelled  chan struct{} // GitHub cancelled the job
	lostOnce   sync.Once
	lost       chan struct{} // the lock could not be renewed
	done       chan struct{}
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
		cancelled: make(chan struct{}), lost: make(chan struct{}), done: make(chan struct{}),
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

// run sees the job through. A job the shim cannot finish now (it is
// stopping) keeps its record, so a restarted shim picks it up.
func (t *task) run(ctx context.Context, job *dispatch.Job) {
	defer close(t.done)
	t.sh.metrics.jobState(t.msg.JobID, stateRunning)
	defer t.sh.metrics.jobState(t.msg.JobID, "")
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go t.renew(renewCtx)
	t.job = job
	if t.job == nil && !t.dispatch(ctx) {
		return
	}
	t.watch(ctx)
}

// dispatch prepares and dispatches the job; it reports whether there is a
// job to watch (a refused job is completed here).
func (t *task) dispatch(ctx context.Context) bool {
	req, err := prepare(t.msg, t.label, t.sh.instance)
	if err == nil {
		t.job, err = t.sh.nomad.Dispatch(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			err = refuse("The job cannot run: Nomad did not take it:", "  "+err.Error())
		}
	}
	var u *unrunnable
	if errors.As(err, &u) {
		t.log.Info("refusing the job", "why", u.Error())
		t.rep.with(func(*book) { t.r.refused(time.Now(), u.lines) })
		t.conclude(ctx, nil, watch.Status{})
		return false
	}
	t.sh.metrics.dispatched(time.Since(t.rec.Acquired))
	t.log = t.log.With("job", t.job.ID)
	return true
}

// watch follows the dispatched job to its end and reports it.
func (t *task) watch(ctx context.Context) {
	tr := &watch.Tracker{Nomad: t.sh.nomad, Job: t.job, Timing: t.sh.cfg.Timing.Watch, Log: t.log}
	st, err := tr.ReadStatus(ctx)
	if err != nil {
		return
	}
	t.rep.with(func(*book) { t.r.dispatched(t.job, st) })
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
		err := tr.Follow(ctx, func(_ context.Context, ev events.Event) error {
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
		if err := tr.Finish(ctx); err != nil {
			t.log.Error("could not remove the job's secrets; a restarted shim reports it again", "error", err)
		}
	}
}

// stopOnCancel stops the Nomad job when GitHub cancels it or its lock is
// lost.
func (t *task) stopOnCancel(ctx context.Context, tr *watch.Tracker) {
	select {
	case <-ctx.Done():
		return
	case <-t.cancelled:
	case <-t.lost:
	}
	if err := tr.Cancel(ctx); err == nil {
		t.log.Info("stopped the Nomad job")
	}
}

// conclude writes "Complete job", completes the job on GitHub and forgets
// it. It reports whether the job is over for good.
func (t *task) conclude(ctx context.Context, job *dispatch.Job, st watch.Status) bool {
	select {
	case <-t.lost:
		t.log.Warn("not completing the job: GitHub gave it up when its lock expired")
		t.forget(ctx)
		return true
	default:
	}
	var res string
	var outputs map[string]string
	t.rep.with(func(*book) {
		res = t.r.finished(job, st, time.Now())
		outputs = t.r.outputs
	})
	err := t.rep.final(ctx, res, outputs)
	switch {
	case errors.Is(err, protocol.ErrJobGone):
		t.log.Warn("GitHub no longer knows the job; dropping it", "error", err)
	case err != nil:
		return false
	default:
		t.log.Info("job completed", "conclusion", res)
		t.sh.metrics.finished(res)
	}
	t.forget(ctx)
	return true
}

func (t *task) forget(ctx context.Context) {
	if err := t.sh.cfg.Store.DeleteJob(ctx, t.rec.JobID); err != nil {
		t.log.Warn("cannot delete the job's record", "error", err)
	}
}
