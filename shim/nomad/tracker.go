package nomad

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/retry"
)

// Timing is how often a Tracker asks Nomad and how long it waits.
type Timing struct {
	Status   time.Duration // between status reads
	NoEvent  time.Duration // how long a finished job may lack its last event
	EndWait  time.Duration // how long to wait for the VM to stop after the last event
	RetryMin time.Duration // first retry delay after a failed call
	RetryMax time.Duration
}

// Tracker sees one dispatched job through: it reads its status, follows
// its events and cleans up after it, retrying while Nomad is unreachable.
type Tracker struct {
	Nomad  Jobs
	Job    *Job
	Timing Timing
	Log    hclog.Logger
	// OnStatus, if set, hears every status read.
	OnStatus func(Status)
	// Steps is the plan's step count, to check the guest's events
	// against; zero takes Job.Steps, and when that is zero too the count
	// the guest's job_started gives.
	Steps int

	mu               sync.Mutex
	status           Status
	displacedStopped bool // stopDisplaced has stopped the Nomad job
}

// Latest is the newest status read.
func (t *Tracker) Latest() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

func (t *Tracker) set(st Status) {
	t.mu.Lock()
	t.status = st
	t.mu.Unlock()
	if t.OnStatus != nil {
		t.OnStatus(st)
	}
}

// ReadStatus reads the job's status, retrying until Nomad answers or ctx
// ends.
func (t *Tracker) ReadStatus(ctx context.Context) (Status, error) {
	backoff := retry.NewBackoff(t.Timing.RetryMin, t.Timing.RetryMax)
	for {
		st, err := t.Nomad.Status(ctx, t.Job)
		if err == nil {
			t.set(st)
			return st, t.stopDisplaced(ctx, st)
		}
		d := backoff.Next()
		t.Log.Warn("cannot read the job's status; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return Status{}, ctx.Err()
		}
	}
}

// WaitPlaced waits while the job is queued.
func (t *Tracker) WaitPlaced(ctx context.Context, st Status) (Status, error) {
	for st.Stage == Queued {
		if !retry.Sleep(ctx, t.Timing.Status) {
			return st, ctx.Err()
		}
		var err error
		if st, err = t.ReadStatus(ctx); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Follow hands every event of the job's stream, from the start, to fn
// until the last one; fn may block (to hold the stream back) and stops
// the stream by returning an error. A job whose task ended without
// writing its last event (the VM or node died) is given NoEvent to
// deliver what it wrote, then left.
func (t *Tracker) Follow(ctx context.Context, fn func(context.Context, contract.Event) error) error {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- t.Nomad.Follow(fctx, t.Latest(), 0, t.onLine(fctx, fn)) }()
	tick := time.NewTicker(t.Timing.Status)
	defer tick.Stop()
	var endedAt time.Time
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Log.Warn("following the job's events failed", "error", err)
			}
			return nil
		case <-tick.C:
			st, err := t.Nomad.Status(ctx, t.Job)
			if err != nil {
				continue
			}
			t.set(st)
			if st.Stuck { // it will never write an event
				stop()
				continue
			}
			if st.Stage != Finished {
				continue
			}
			if st.Displaced {
				// Its node is gone or going: no more events will come.
				stop()
				if err := t.stopDisplaced(ctx, st); err != nil {
					return err
				}
				continue
			}
			if endedAt.IsZero() {
				endedAt = time.Now()
			} else if time.Since(endedAt) > t.Timing.NoEvent {
				stop()
			}
		}
	}
}

// onLine decodes, checks and hands on each line. The guest writes the
// stream and is hostile: an event that does not fit the plan ends the
// stream with an infra_error of the tracker's own, so the job fails with
// a message saying why, and no renderer ever sees the bad event.
func (t *Tracker) onLine(ctx context.Context, fn func(context.Context, contract.Event) error) func([]byte, int64) error {
	steps := t.Steps
	if steps == 0 && t.Job != nil {
		steps = t.Job.Steps
	}
	check := &contract.Checker{Steps: steps}
	var last time.Time // of the last good event
	return func(line []byte, next int64) error {
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Log.Warn("skipping a line of the events file", "error", err)
			return nil
		}
		ok, err := check.Check(&ev)
		if err != nil {
			return t.invalid(ctx, fn, check, last, next-int64(len(line))-1, err)
		}
		if !ok {
			return nil
		}
		last = ev.Time
		if ev.Type == contract.TypeJobStarted {
			t.awaitBootDetail(ctx)
		}
		if err := fn(ctx, ev); err != nil {
			return err
		}
		if contract.Ends(&ev, t.Job != nil && t.Job.Debug) {
			return contract.ErrStop
		}
		return nil
	}
}

// bootDetailWait bounds how long a job_started waits for the driver's
// Booting event to reach the Nomad servers: a warm start's guest agent can
// report before the client's batched update does, and the VM-up line
// (VMUpLine) says how the VM came up from that event.
const bootDetailWait = time.Second

// awaitBootDetail reads the status again until it has the Booting
// event's detail, for at most bootDetailWait.
func (t *Tracker) awaitBootDetail(ctx context.Context) {
	deadline := time.Now().Add(bootDetailWait)
	every := min(cmp.Or(t.Timing.Status, 250*time.Millisecond), 250*time.Millisecond)
	for t.Latest().Boot == "" && time.Now().Before(deadline) {
		if st, err := t.Nomad.Status(ctx, t.Job); err == nil {
			t.set(st)
			if st.Boot != "" {
				return
			}
		}
		if !retry.Sleep(ctx, every) {
			return
		}
	}
}

// invalid ends the stream at a bad event with an infra_error that follows
// the last good one, dated by it so a replay renders the same. The bad
// event's own time is the guest's word: a forged line has none (the forge
// showed year 1 and a negative duration) or any it likes.
func (t *Tracker) invalid(ctx context.Context, fn func(context.Context, contract.Event) error, check *contract.Checker, at time.Time, offset int64, err error) error {
	msg := fmt.Sprintf("the guest sent an invalid event at offset %d: %v", max(offset, 0), err)
	t.Log.Warn("ending the job's event stream", "error", msg)
	if at.IsZero() {
		at = time.Now().UTC()
	}
	ev := contract.Event{Seq: check.Seq() + 1, Time: at, Type: contract.TypeInfraError, Step: contract.JobLevel, Message: msg}
	if err := fn(ctx, ev); err != nil {
		return err
	}
	return contract.ErrStop
}

// WaitEnd waits, up to EndWait, for the job's task to stop (the VM powers
// off after its last event) and returns the final status. A task still
// running then is stopped: nothing more will come of it.
func (t *Tracker) WaitEnd(ctx context.Context) (Status, error) {
	deadline := time.Now().Add(t.Timing.EndWait)
	for {
		st, err := t.ReadStatus(ctx)
		if err != nil {
			return st, err
		}
		if st.Stage == Finished {
			return st, nil
		}
		if st.Stuck {
			return t.giveUp(ctx, st)
		}
		if time.Now().After(deadline) {
			t.Log.Warn("the VM did not stop after the job's last event; stopping it")
			return st, t.Cancel(ctx)
		}
		if !retry.Sleep(ctx, t.Timing.Status) {
			return st, ctx.Err()
		}
	}
}

// giveUp stops a job that cannot start and returns it as failed for
// the infrastructure, with the reason its status found.
func (t *Tracker) giveUp(ctx context.Context, st Status) (Status, error) {
	t.Log.Error("the job cannot start; stopping it", "problem", st.Problem)
	if err := t.Cancel(ctx); err != nil {
		return st, err
	}
	st.Stage, st.Stuck, st.ExitCode = Finished, false, contract.ExitInfrastructure
	t.set(st)
	return st, nil
}

// stopDisplaced stops the Nomad job once Nomad has taken it off its node:
// Nomad places a lost or migrated allocation again, regardless of the
// job's reschedule policy, and a CI job must never run twice behind the
// user's back. The parent jobs' stop_after_client_disconnect delays that
// placement for a lost node, so this stop comes first.
func (t *Tracker) stopDisplaced(ctx context.Context, st Status) error {
	t.mu.Lock()
	done := t.displacedStopped
	t.mu.Unlock()
	if !st.Displaced || done {
		return nil
	}
	t.Log.Warn("Nomad took the job off its node; stopping it so that it is not run again", "node", st.Node, "node_id", st.NodeID, "problem", st.Problem)
	if err := t.Cancel(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	t.displacedStopped = true
	t.mu.Unlock()
	return nil
}

// Cancel stops the job, retrying until Nomad takes it or ctx ends.
func (t *Tracker) Cancel(ctx context.Context) error {
	backoff := retry.NewBackoff(t.Timing.RetryMin, t.Timing.RetryMax)
	for {
		err := t.Nomad.Cancel(ctx, t.Job)
		if err == nil {
			return nil
		}
		d := backoff.Next()
		t.Log.Warn("cannot stop the job yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// Finish removes what the job left in Nomad (its secrets), which also
// takes it off the in-flight list. It gives up after a few tries: a
// restarted shim reports the job again and retries.
func (t *Tracker) Finish(ctx context.Context) error {
	backoff := retry.NewBackoff(t.Timing.RetryMin, t.Timing.RetryMax)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = t.Nomad.Finish(ctx, t.Job); err == nil {
			return nil
		}
		d := backoff.Next()
		t.Log.Warn("cannot clean up the job yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
	return err
}
