package forgejo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/solstice-ci/solstice/shim/retry"
)

// logBatch is the most rows one UpdateLog carries.
const logBatch = 500

// reporter sends a task's journal to the forge: log rows as they come,
// the task state on every step change and as a heartbeat, and at the end
// the last rows with no_more and the result.
type reporter struct {
	forge   *Client
	id      int64
	j       *journal
	timing  Timing
	log     hclog.Logger
	metrics *Metrics

	// forgeDone is closed when the forge says the task is over (cancelled
	// in the UI, or failed as a zombie) or will not take reports for it.
	forgeDone chan struct{}
	doneOnce  sync.Once
	// fatal is told about errors no retry can cure for the whole runner.
	fatal func(error)

	logClosed bool
	quit      chan struct{}
	stopped   chan struct{}
	quitOnce  sync.Once
}

func newReporter(forge *Client, id int64, j *journal, rt *Runner) *reporter {
	return &reporter{
		forge: forge, id: id, j: j, timing: rt.cfg.Timing, log: rt.log.With("task", id), metrics: rt.metrics,
		forgeDone: make(chan struct{}), fatal: rt.fail,
	}
}

// start runs the reporting loop until stopReporting or ctx ends.
func (r *reporter) start(ctx context.Context) {
	r.quit, r.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.stopped)
		r.loop(ctx)
	}()
}

// stopReporting ends the loop after the call it is making, if any, and
// waits for it; the final report follows. (Cancelling the call instead
// would lose its answer and make the final report send its rows again.)
func (r *reporter) stopReporting() {
	if r.quit == nil {
		return
	}
	r.quitOnce.Do(func() { close(r.quit) })
	<-r.stopped
}

func (r *reporter) loop(ctx context.Context) {
	heartbeat := time.NewTicker(r.timing.Heartbeat)
	defer heartbeat.Stop()
	flush := time.NewTicker(r.timing.LogFlush)
	defer flush.Stop()
	backoff := retry.NewBackoff(r.timing.RetryMin, r.timing.RetryMax)
	var notBefore time.Time
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-r.quit:
			return
		case <-flush.C:
			err = r.whenDue(notBefore, func() error { return r.flushLog(ctx, false) })
		case <-r.j.urgent:
			err = r.whenDue(notBefore, func() error { return r.report(ctx) })
		case <-heartbeat.C:
			err = r.whenDue(notBefore, func() error { return r.report(ctx) })
		}
		if err == nil || errors.Is(err, errNotDue) {
			if err == nil {
				backoff.Reset()
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		d := backoff.Next()
		notBefore = time.Now().Add(d)
		// Until then ticks and step changes are skipped; the next report
		// carries everything, as rows and state are cumulative.
		r.log.Warn("reporting to the forge failed; retrying", "in", d, "error", err)
	}
}

var errNotDue = errors.New("not due")

func (r *reporter) whenDue(notBefore time.Time, fn func() error) error {
	if time.Now().Before(notBefore) {
		return errNotDue
	}
	return fn()
}

// report sends pending rows, then the state (a heartbeat).
func (r *reporter) report(ctx context.Context) error {
	if err := r.flushLog(ctx, false); err != nil {
		return err
	}
	return r.sendState(ctx, false)
}

// flushLog sends the pending rows in batches. With noMore the last batch
// says no more rows follow.
func (r *reporter) flushLog(ctx context.Context, noMore bool) error {
	for !r.logClosed {
		index, rows := r.j.unsent(logBatch)
		last := noMore && len(rows) == r.j.lag()
		if len(rows) == 0 && !noMore {
			return nil
		}
		ack, err := r.forge.UpdateLog(ctx, &runnerv1.UpdateLogRequest{TaskId: r.id, Index: index, Rows: rows, NoMore: last})
		if err := r.permanent(err); err != nil {
			return err
		}
		if lost := r.j.acked(ack); lost > 0 {
			r.log.Error("the forge lost log rows it had acknowledged; filling the gap", "rows", lost, "ack", ack)
		}
		r.metrics.logLag(r.id, r.j.lag())
		if ack < index+int64(len(rows)) {
			// The forge stored only part (or none) of the batch: try the
			// rest from its ack next time, not in a tight loop.
			return fmt.Errorf("UpdateLog: the forge stored rows up to %d of %d", ack, index+int64(len(rows)))
		}
		if len(rows) == 0 || last {
			return nil
		}
	}
	return nil
}

// permanent handles the errors retrying cannot cure: a closed log stops
// log reports, a task the forge will not take ends the task, and
// credentials the forge rejects stop the runner. Other errors come back.
func (r *reporter) permanent(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrLogClosed):
		r.log.Warn("the forge closed the task's log; the remaining rows are dropped", "rows", r.j.lag())
		r.logClosed = true
		return nil
	case errors.Is(err, ErrTaskGone):
		r.forgeIsDone()
		return err
	case errors.Is(err, ErrUnauthorized):
		r.fatal(err)
		return err
	}
	return err
}

func (r *reporter) forgeIsDone() {
	r.doneOnce.Do(func() { close(r.forgeDone) })
}

// sendState sends the task state; final includes the result.
func (r *reporter) sendState(ctx context.Context, final bool) error {
	req, _ := r.j.state(r.id, final)
	resp, err := r.forge.UpdateTask(ctx, req)
	if err := r.permanent(err); err != nil {
		return err
	}
	if res := resp.GetState().GetResult(); res != runnerv1.Result_RESULT_UNSPECIFIED && !final {
		r.doneOnce.Do(func() {
			r.log.Info("the forge ended the task", "result", res)
			close(r.forgeDone)
		})
	}
	return nil
}

// final sends every remaining row with no_more, then the result. It
// retries until the forge took both, the forge refuses for good, or ctx
// ends (the shim is shutting down: a restarted shim reports instead).
func (r *reporter) final(ctx context.Context) error {
	backoff := retry.NewBackoff(r.timing.RetryMin, r.timing.RetryMax)
	for step := 0; step < 2; {
		var err error
		if step == 0 {
			err = r.flushLog(ctx, true)
		} else {
			err = r.sendState(ctx, true)
		}
		switch {
		case err == nil:
			step++
			backoff.Reset()
			continue
		case Permanent(err):
			return err
		case ctx.Err() != nil:
			return fmt.Errorf("final report of task %d: %w", r.id, ctx.Err())
		}
		d := backoff.Next()
		r.log.Warn("final report to the forge failed; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return fmt.Errorf("final report of task %d: %w", r.id, ctx.Err())
		}
	}
	return nil
}
