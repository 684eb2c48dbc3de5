package jobrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// The guest is hostile: it may write events without end or never finish.
// These bound what a job may take from its client.
const (
	// DefaultMaxEvents is the events file's size limit when the plugin
	// config sets none (max_events_size).
	DefaultMaxEvents = 1 << 30
	// DeadlineMargin is added to a job's own timeouts for its deadline,
	// and is how long the guest has to finish once cancelled there.
	DeadlineMargin = 10 * time.Minute

	defaultJobTimeout    = 360 * time.Minute // the guest's defaults (GitHub's)
	defaultCancelTimeout = 5 * time.Minute
	maxJobTimeout        = 30 * 24 * time.Hour // past any real job; keeps the sum in range
)

// Deadline is when a job started at start has certainly overrun: the
// guest's own timeout, then its cancel timeout, then DeadlineMargin. A nil
// plan gets the defaults.
func Deadline(start time.Time, p *contract.Plan) time.Time {
	var timeout, cancel float64
	if p != nil {
		timeout, cancel = p.TimeoutMinutes, p.CancelTimeoutMinutes
	}
	return start.Add(minutes(timeout, defaultJobTimeout) + minutes(cancel, defaultCancelTimeout) + DeadlineMargin)
}

func minutes(m float64, def time.Duration) time.Duration {
	switch {
	case m <= 0:
		return def
	case m >= maxJobTimeout.Minutes():
		return maxJobTimeout
	}
	return time.Duration(m * float64(time.Minute))
}

// errBound is a bound the job broke: the driver ends the job with it as an
// infrastructure failure.
type errBound struct{ msg string }

func (e errBound) Error() string { return e.msg }

// watchDeadline cancels the job at r.Deadline, and ends the follow (stop)
// DeadlineMargin later if the guest has not finished by then.
func (r *Runner) watchDeadline(ctx context.Context, stop context.CancelCauseFunc) {
	if r.Deadline.IsZero() {
		return
	}
	if !sleepUntil(ctx, r.Deadline) {
		return
	}
	r.Log.Warn("the job ran past its deadline; cancelling it", "deadline", r.Deadline)
	cancel := r.Cancel
	if r.cancel != nil {
		cancel = r.cancel
	}
	// A guest that does not answer must not hold the deadline back.
	cctx, done := context.WithTimeout(ctx, time.Minute)
	if err := cancel(cctx); err != nil && ctx.Err() == nil {
		r.Log.Warn("could not cancel the overrunning job", "error", err)
	}
	done()
	if !sleepUntil(ctx, time.Now().Add(r.grace())) {
		return
	}
	stop(errBound{fmt.Sprintf("the job ran past its deadline of %s and did not finish within %s of being cancelled",
		r.Deadline.UTC().Format(time.RFC3339), r.grace())})
}

func (r *Runner) grace() time.Duration {
	if r.Grace > 0 {
		return r.Grace
	}
	return DeadlineMargin
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// checkSize refuses a line that would take the events file past its limit.
func (r *Runner) checkSize(end int64) error {
	limit := r.MaxEvents
	if limit <= 0 {
		limit = DefaultMaxEvents
	}
	if end > limit {
		return errBound{fmt.Sprintf("the job's event stream exceeded max_events_size (%d bytes); the runner stopped it", limit)}
	}
	return nil
}

// bounded reports the bound err broke, if it is one.
func bounded(err error) (errBound, bool) {
	var b errBound
	return b, errors.As(err, &b)
}

// appendInfraError ends the events file f (open at its end, which is a
// line's end) with an infra_error after its last event, so whoever follows
// the job learns why the runner ended it.
func appendInfraError(f *os.File, message string) error {
	seq, err := lastSeq(f)
	if err != nil {
		return err
	}
	ev := contract.Event{Seq: seq + 1, Time: time.Now().UTC(), Type: contract.TypeInfraError, Message: message}
	if _, err := f.Write(contract.MarshalEvent(&ev)); err != nil {
		return fmt.Errorf("append to events file: %w", err)
	}
	return f.Sync()
}

// lastSeq is the sequence number of f's last line, 0 when there is none
// that decodes.
func lastSeq(f *os.File) (int64, error) {
	if _, err := f.Stat(); err != nil {
		return 0, fmt.Errorf("events file: %w", err)
	}
	ev, _ := LastEvent(f.Name())
	return ev.Seq, nil
}
