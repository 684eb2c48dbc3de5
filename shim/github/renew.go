package github

import (
	"context"
	"errors"
	"time"

	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/watch"
)

// renew keeps the job's lock every Timing.Renew, as the official runner
// does, until ctx ends. Failures are retried until the lock's lockedUntil
// has passed; then, or when GitHub no longer knows the job, the lock is
// lost and the job is stopped.
func (t *task) renew(ctx context.Context) {
	// A resumed job's message is old; its lock may still hold, and only
	// GitHub can say (a gone job answers 404).
	lockedUntil := t.msg.LockedUntil
	if soon := time.Now().Add(t.sh.cfg.Timing.Renew); soon.After(lockedUntil) {
		lockedUntil = soon
	}
	for {
		until, err := t.renewOnce(ctx, lockedUntil)
		if err != nil {
			if ctx.Err() == nil {
				t.loseLock(err)
			}
			return
		}
		lockedUntil = until
		if !watch.Sleep(ctx, t.sh.cfg.Timing.Renew) {
			return
		}
	}
}

// renewOnce renews, retrying with backoff while the lock still holds.
func (t *task) renewOnce(ctx context.Context, lockedUntil time.Time) (time.Time, error) {
	retry := watch.NewBackoff(t.sh.cfg.Timing.RetryMin, t.sh.cfg.Timing.RetryMax)
	for {
		until, err := t.jc.RenewJob(ctx)
		t.sh.metrics.renewal(err)
		if err == nil {
			t.log.Debug("renewed the job's lock", "locked_until", until)
			return until, nil
		}
		if errors.Is(err, protocol.ErrJobGone) || ctx.Err() != nil {
			return time.Time{}, err
		}
		d := retry.Next()
		if time.Now().Add(d).After(lockedUntil) {
			return time.Time{}, err
		}
		t.log.Warn("cannot renew the job's lock; retrying", "in", d, "locked_until", lockedUntil, "error", err)
		if !watch.Sleep(ctx, d) {
			return time.Time{}, ctx.Err()
		}
	}
}
