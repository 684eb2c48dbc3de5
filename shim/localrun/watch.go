package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// cancelGrace bounds how long a cancelled job may take to stop: the parent
// jobs' kill_timeout plus room for Nomad to notice.
const cancelGrace = 90 * time.Second

// timing is how solstice run follows a job: someone waits at a terminal,
// so it reads the status more often than a shim does.
var timing = nomad.Timing{
	Status: 500 * time.Millisecond, NoEvent: 15 * time.Second, EndWait: cancelGrace,
	RetryMin: 500 * time.Millisecond, RetryMax: 10 * time.Second,
}

// errNotStopped ends the watch of a cancelled job that did not stop.
var errNotStopped = errors.New("did not stop within " + cancelGrace.String())

// watch reports a dispatched job's stages and events until it has
// finished, through the Tracker the forge shims use too. When ctx ends
// (Ctrl-C) the job is stopped in Nomad and watched while it stops (its
// if: cancelled() steps run), for cancelGrace at most.
func (r *runner) watch(ctx context.Context, res *result, job *nomad.Job) {
	name := res.run.Name
	r.print.job(name, "queued as Nomad job %s", job.ID)
	// The plan has one step per step of the run (translate.Plan), so the
	// run gives the count the guest's events are checked against.
	tr := &nomad.Tracker{Nomad: r.d, Job: job, Timing: timing, Log: r.opts.Log.With("job", job.ID), OnStatus: r.stages(res), Steps: len(res.run.Steps)}
	wctx, stop := r.cancelOnInterrupt(ctx, name, tr)
	defer stop(nil)
	end, st, err := r.follow(wctx, tr, res)
	if err != nil {
		res.finish(contract.Cancelled, contract.ExitCancelled, context.Cause(wctx).Error())
		return
	}
	out := nomad.Outcome(end, st)
	res.finish(out.Conclusion, out.Code, out.Problem)
	r.print.done(res)
}

// follow sees the job through and returns its last event (nil if none)
// and final status.
func (r *runner) follow(ctx context.Context, tr *nomad.Tracker, res *result) (*contract.Event, nomad.Status, error) {
	st, err := tr.ReadStatus(ctx)
	if err == nil {
		st, err = tr.WaitPlaced(ctx, st)
	}
	if err != nil {
		return nil, st, err
	}
	var end *contract.Event
	if st.AllocID != "" {
		err := tr.Follow(ctx, func(_ context.Context, ev contract.Event) error {
			r.print.event(res.run.Name, ev)
			if ev.Type == contract.TypeOutputs {
				res.outputs = ev.Outputs
			}
			if ev.Terminal() {
				end = &ev
			}
			return nil
		})
		if err != nil {
			return nil, st, err
		}
	}
	st, err = tr.WaitEnd(ctx)
	return end, st, err
}

// stages prints the job's stage when it changes, and a first image
// download's progress as the driver reports it.
func (r *runner) stages(res *result) func(nomad.Status) {
	var mu sync.Mutex
	stage, download := nomad.Queued, ""
	return func(st nomad.Status) {
		mu.Lock()
		defer mu.Unlock()
		if st.Stage != stage {
			stage = st.Stage
			switch st.Stage {
			case nomad.Booting:
				r.print.job(res.run.Name, "booting a %s VM on %s", res.label, st.Node)
			case nomad.Running:
				r.print.job(res.run.Name, "running")
			}
		}
		if st.Stage == nomad.Booting && st.Download != download {
			download = st.Download
			r.print.job(res.run.Name, "downloading image %s", st.Download)
		}
	}
}

// cancelOnInterrupt returns the context the job is watched under. It
// outlives ctx: when ctx ends the job is stopped in Nomad, and the
// context ends (with errNotStopped) only cancelGrace later. stop ends it.
func (r *runner) cancelOnInterrupt(ctx context.Context, name string, tr *nomad.Tracker) (context.Context, context.CancelCauseFunc) {
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-wctx.Done():
			return
		case <-ctx.Done():
		}
		r.print.job(name, "cancelling: stopping Nomad job %s", tr.Job.ID)
		grace := time.AfterFunc(cancelGrace, func() { cancel(errNotStopped) })
		context.AfterFunc(wctx, func() { grace.Stop() })
		tr.Cancel(wctx)
	}()
	return wctx, cancel
}

// toValue turns Go data into an expression value (via JSON, keeping key
// order where the data has one).
func toValue(v any) expr.Value {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	val, err := expr.ParseJSON(b)
	if err != nil {
		return nil
	}
	return val
}

// overall is the process exit code for a set of results: the worst one.
func overall(all []*result) int {
	code := contract.ExitSuccess
	for _, res := range all {
		switch {
		case res.conclusion == contract.Success || res.conclusion == contract.Skipped:
		case res.code == contract.ExitInfrastructure:
			code = max(code, contract.ExitInfrastructure)
		case res.conclusion == contract.Cancelled:
			code = max(code, contract.ExitCancelled)
		default:
			code = max(code, contract.ExitJobFailed)
		}
	}
	return code
}
