package forgejo

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/shim/retry"
)

// poll fetches tasks while fewer than Capacity are in flight, and starts
// each one at once. tasks_version is the last one the forge sent, and 0
// after a task (so the next call looks for more at once).
func (rt *Runner) poll(ctx context.Context) error {
	var version int64
	backoff := retry.NewBackoff(rt.cfg.Timing.RetryMin, rt.cfg.Timing.RetryMax)
	for {
		if err := rt.takeSlot(ctx); err != nil {
			return err
		}
		got, next, err := rt.fetchOne(ctx, version)
		if err != nil {
			rt.releaseSlot()
			if errors.Is(err, ErrUnauthorized) || ctx.Err() != nil {
				return err
			}
			d := backoff.Next()
			rt.log.Warn("fetching a task failed; retrying", "in", d, "error", err)
			if !retry.Sleep(ctx, d) {
				return ctx.Err()
			}
			continue
		}
		backoff.Reset()
		version = next
		if !got {
			rt.releaseSlot()
			if !retry.Sleep(ctx, rt.cfg.Timing.Fetch) {
				return ctx.Err()
			}
		}
	}
}

// fetchOne asks the forge for a task and starts it. It reports whether it
// got one, and the tasks_version to send next.
func (rt *Runner) fetchOne(ctx context.Context, version int64) (bool, int64, error) {
	catalog, err := rt.currentCatalog(ctx)
	if err != nil {
		return false, version, err // no dispatching without Nomad: do not take tasks
	}
	if err := rt.redeclare(ctx, catalog); err != nil {
		return false, version, err
	}
	resp, err := rt.forge.FetchTask(ctx, version)
	if err != nil {
		return false, version, err
	}
	if resp.Task == nil {
		return false, resp.TasksVersion, nil
	}
	fetched := time.Now()
	rt.log.Info("fetched a task", "task", resp.Task.Id)
	rt.tasks.Add(1)
	go func() {
		defer rt.tasks.Done()
		defer rt.releaseSlot()
		rt.runTask(ctx, resp.Task, catalog, fetched)
	}()
	return true, 0, nil
}

// slots counts the tasks in flight. The poller waits for a free one;
// resumed tasks take one even when none is free (capacity may have been
// lowered since they were dispatched).
type slots struct {
	mu   sync.Mutex
	n    int
	max  int
	free chan struct{}
}

func newSlots(max int) *slots { return &slots{max: max, free: make(chan struct{}, 1)} }

func (s *slots) take(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.n < s.max {
			s.n++
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *slots) force() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
}

func (s *slots) release() {
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
	notify(s.free)
}

func (rt *Runner) takeSlot(ctx context.Context) error { return rt.slots.take(ctx) }

func (rt *Runner) releaseSlot() { rt.slots.release() }
