package forgejo

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/retry"
)

// resumeAll resumes every job Nomad runs for this runner.
func (rt *Runner) resumeAll(ctx context.Context) error {
	backoff := retry.NewBackoff(rt.cfg.Timing.RetryMin, rt.cfg.Timing.RetryMax)
	for {
		jobs, err := rt.nomad.InFlight(ctx, ForgeName, rt.instance)
		if err == nil {
			for _, job := range jobs {
				rt.slots.force()
				rt.tasks.Add(1)
				go func() {
					defer rt.tasks.Done()
					defer rt.releaseSlot()
					rt.resume(ctx, job)
				}()
			}
			if len(jobs) > 0 {
				rt.log.Info("resuming tasks in flight", "count", len(jobs))
			}
			return nil
		}
		d := backoff.Next()
		rt.log.Warn("cannot list the jobs in flight yet; retrying", "in", d, "error", fmt.Errorf("list in-flight jobs: %w", err))
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// resume picks up a job dispatched before the shim restarted. The forge's
// ack_index says how many rows it stored: the job is rendered again from
// the start and only the rows after those are sent.
func (rt *Runner) resume(ctx context.Context, job *nomad.Job) {
	id, err := strconv.ParseInt(job.Meta.TaskID, 10, 64)
	if err != nil {
		rt.log.Error("a dispatched job names no forge task; leaving it alone", "job", job.ID, "task_id", job.Meta.TaskID)
		return
	}
	t := rt.newTask(id, 0)
	t.job = job
	t.log = t.log.With("job", job.ID)
	t.setState(stateQueued)
	defer t.setState("")
	ack, err := t.askAck(ctx)
	if errors.Is(err, ErrTaskGone) {
		t.abandon(ctx, err)
		return
	}
	if err != nil {
		return // the runner is stopping
	}
	t.j.base = ack
	t.log.Info("resuming a task", "rows_stored", ack)
	t.watch(ctx)
}

// askAck asks the forge how many rows of the task's log it stored,
// retrying while the forge is unreachable.
func (t *task) askAck(ctx context.Context) (int64, error) {
	backoff := retry.NewBackoff(t.rt.cfg.Timing.RetryMin, t.rt.cfg.Timing.RetryMax)
	for {
		ack, err := t.rt.forge.UpdateLog(ctx, &runnerv1.UpdateLogRequest{TaskId: t.id})
		if err == nil || errors.Is(err, ErrTaskGone) {
			return ack, err
		}
		if errors.Is(err, ErrUnauthorized) {
			t.rt.fail(err)
			return 0, err
		}
		d := backoff.Next()
		t.log.Warn("cannot ask the forge for the task's log yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return 0, ctx.Err()
		}
	}
}

// abandon stops a job the forge will not take reports for.
func (t *task) abandon(ctx context.Context, why error) {
	t.log.Warn("the forge will not take reports for this task; stopping its job", "error", why)
	if err := t.rt.nomad.Cancel(ctx, t.job); err != nil {
		t.log.Warn("cancel the job", "error", err)
	}
	t.finishJob(ctx)
}
