package localrun

import (
	"context"
	"encoding/json"
	"time"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// cancelGrace bounds how long a cancelled job may take to stop: the parent
// jobs' kill_timeout plus room for Nomad to notice.
const cancelGrace = 90 * time.Second

// watch reports a dispatched job's stages and events until it has finished.
// When ctx ends (Ctrl-C) the job is stopped in Nomad and watched until the
// VM is gone.
func (r *runner) watch(ctx context.Context, res *result, job *nomad.Job) {
	name := res.run.Name
	r.print.job(name, "queued as Nomad job %s", job.ID)
	w := &watcher{r: r, res: res, job: job, final: make(chan contract.Event, 1)}
	stage := nomad.Queued
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	var deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if deadline == nil {
				r.print.job(name, "cancelling: stopping Nomad job %s", job.ID)
				r.d.Cancel(context.Background(), job)
				deadline = time.After(cancelGrace)
				ctx = context.Background()
			}
		case <-deadline:
			res.finish(contract.Cancelled, contract.ExitCancelled, "did not stop within "+cancelGrace.String())
			return
		case <-poll.C:
		}
		st, err := r.d.Status(context.Background(), job)
		if err != nil {
			continue
		}
		if st.Stage != stage {
			stage = st.Stage
			w.stageChanged(st)
		}
		if st.Stage == nomad.Finished {
			w.finish(st)
			return
		}
	}
}

type watcher struct {
	r         *runner
	res       *result
	job       *nomad.Job
	following bool
	stopFollw context.CancelFunc
	done      chan struct{}
	final     chan contract.Event
}

func (w *watcher) stageChanged(st nomad.Status) {
	name := w.res.run.Name
	switch st.Stage {
	case nomad.Booting:
		w.r.print.job(name, "booting a %s VM on %s", w.res.label, st.Node)
	case nomad.Running:
		w.r.print.job(name, "running")
	}
	if st.AllocID != "" && !w.following {
		w.follow(st)
	}
}

// follow streams the job's events in the background.
func (w *watcher) follow(st nomad.Status) {
	w.following = true
	ctx, cancel := context.WithCancel(context.Background())
	w.stopFollw, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.r.d.Follow(ctx, st, 0, func(line []byte, _ int64) error {
			ev, err := contract.DecodeEvent(line)
			if err != nil {
				return nil
			}
			w.r.print.event(w.res.run.Name, ev)
			if ev.Type == contract.TypeOutputs {
				w.res.outputs = ev.Outputs
			}
			if ev.Terminal() {
				w.final <- ev
				return contract.ErrStop
			}
			return nil
		})
	}()
}

// finish settles the result once Nomad says the task is over, giving the
// event stream a moment to deliver its last lines.
func (w *watcher) finish(st nomad.Status) {
	if !w.following && st.AllocID != "" {
		w.follow(st)
	}
	var ev contract.Event
	if w.following {
		select {
		case ev = <-w.final:
		case <-time.After(15 * time.Second):
			w.stopFollw()
		}
		<-w.done
	}
	switch {
	case ev.Type == contract.TypeJobFinished:
		w.res.finish(ev.Conclusion, st.ExitCode, "")
	case ev.Type == contract.TypeInfraError:
		w.res.finish(contract.Failure, contract.ExitInfrastructure, ev.Message)
	case st.ExitCode == contract.ExitCancelled:
		w.res.finish(contract.Cancelled, st.ExitCode, st.Problem)
	default:
		note := st.Problem
		if note == "" {
			note = "the job ended without reporting a result"
		}
		w.res.finish(contract.Failure, contract.ExitInfrastructure, note)
	}
	w.r.print.done(w.res)
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
