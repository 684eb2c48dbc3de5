package github

import (
	"context"
	"errors"
	"time"

	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/retry"
)

// renewTimeout bounds one renewjob call, so a hung connection is retried
// instead of silently letting the lock run out.
const renewTimeout = 30 * time.Second

// renew keeps the job's lock every Timing.Renew, as the official runner
// does, until ctx ends. Failures are retried until LockGrace after the
// lock's lockedUntil (the official runner's five minutes); then, or when
// GitHub no longer knows the job, the lock is lost and the job is stopped.
func (t *task) renew(ctx context.Context) {
	lockedUntil := t.lockedUntil()
	for retry.Sleep(ctx, t.sh.cfg.Timing.Renew) {
		until, err := t.renewOnce(ctx, lockedUntil)
		if err != nil {
			if ctx.Err() == nil {
				t.loseLock(err)
			}
			return
		}
		lockedUntil = until
	}
}

// lockedUntil is how long the acquired message said the lock holds. A
// resumed job's message is old; its lock may still hold, and only GitHub
// can say (a gone job answers 404), so it counts as held for one interval.
func (t *task) lockedUntil() time.Time {
	soon := time.Now().Add(t.sh.cfg.Timing.Renew)
	if soon.After(t.msg.LockedUntil) {
		return soon
	}
	return t.msg.LockedUntil
}

// renewOnce renews, retrying with backoff while the lock (plus grace)
// still holds.
func (t *task) renewOnce(ctx context.Context, lockedUntil time.Time) (time.Time, error) {
	backoff := retry.NewBackoff(t.sh.cfg.Timing.RetryMin, t.sh.cfg.Timing.RetryMax)
	giveUp := lockedUntil.Add(t.sh.cfg.Timing.LockGrace)
	for {
		rctx, cancel := context.WithTimeout(ctx, renewTimeout)
		until, err := t.jc.RenewJob(rctx)
		cancel()
		t.sh.metrics.renewal(err)
		if err == nil {
			t.log.Debug("renewed the job's lock", "locked_until", until)
			return until, nil
		}
		if errors.Is(err, protocol.ErrJobGone) || ctx.Err() != nil {
			return time.Time{}, err
		}
		d := backoff.Next()
		if time.Now().Add(d).After(giveUp) {
			return time.Time{}, err
		}
		t.log.Warn("cannot renew the job's lock; retrying", "in", d, "locked_until", lockedUntil, "error", err)
		if !retry.Sleep(ctx, d) {
			return time.Time{}, ctx.Err()
		}
	}
}
