package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/retry"
)

// reporter sends the book to GitHub: step updates when steps change, new
// lines to the live feed, and each finished step's log once. Like the
// official runner it batches: everything that changed within one flush
// interval goes out together.
type reporter struct {
	sh  *Shim
	jc  *protocol.JobClient
	rec *Record
	log hclog.Logger

	mu sync.Mutex // guards b, shared with the renderer
	b  *book

	feed      *protocol.Feed
	feedDown  bool // the feed failed; lines still reach the step logs
	lastOrder int64
}

// with runs fn with the book locked.
func (p *reporter) with(fn func(b *book)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p.b)
}

// run flushes every Timing.Flush until ctx ends.
// After a failure it waits out a backoff first, so an unreachable GitHub
// is not asked twice a second.
func (p *reporter) run(ctx context.Context) {
	tick := time.NewTicker(p.sh.cfg.Timing.Flush)
	defer tick.Stop()
	backoff := retry.NewBackoff(p.sh.cfg.Timing.RetryMin, p.sh.cfg.Timing.RetryMax)
	var notBefore time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.Before(notBefore) {
				continue
			}
			if err := p.flushWithin(ctx); err != nil && ctx.Err() == nil {
				d := backoff.Next()
				notBefore = now.Add(d)
				p.log.Warn("reporting to GitHub failed; retrying", "in", d, "error", err)
			} else {
				backoff.Reset()
			}
		}
	}
}

// flushTimeout bounds one flush, so a hung connection is retried.
const flushTimeout = 2 * time.Minute

func (p *reporter) flushWithin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	return p.flush(ctx)
}

// upload is a finished step whose log GitHub does not have yet.
type upload struct {
	id     string
	number int
	log    []byte
	lines  int64
}

// flush sends what changed since the last flush.
func (p *reporter) flush(ctx context.Context) error {
	var updates []protocol.StepUpdate
	var uploads []upload
	var feed []feedBatch
	p.with(func(b *book) {
		if b.dirty {
			updates, b.dirty = b.updates(), false
		}
		uploads, feed = p.pending(b)
	})
	if updates != nil {
		if err := p.jc.UpdateSteps(ctx, updates, p.changeOrder()); err != nil {
			p.with(func(b *book) { b.dirty = true })
			p.sh.metrics.apiCall("steps_update", err)
			return fmt.Errorf("update steps: %w", err)
		}
	}
	p.sendFeed(ctx, feed)
	for _, u := range uploads {
		if err := p.upload(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// changeOrder orders the updates across shim restarts too, so it comes
// from the clock rather than from a counter that would start over.
func (p *reporter) changeOrder() int64 {
	n := time.Now().UnixNano()
	if n <= p.lastOrder {
		n = p.lastOrder + 1
	}
	p.lastOrder = n
	return n
}

// feedBatch is lines of one step for the live feed; start is the number
// of the first, from 1.
type feedBatch struct {
	step  *step
	id    string
	start int64
	lines []string
}

func (p *reporter) pending(b *book) ([]upload, []feedBatch) {
	var ups []upload
	var feed []feedBatch
	for _, s := range b.steps {
		if p.rec.uploaded(s.number) {
			continue
		}
		if s.fed < len(s.lines) && s.status != protocol.StatusPending {
			feed = append(feed, feedBatch{step: s, id: s.id, start: int64(s.fed) + 1, lines: append([]string(nil), s.lines[s.fed:]...)})
		}
		if s.status == protocol.StatusCompleted {
			ups = append(ups, upload{id: s.id, number: s.number, log: s.log(), lines: int64(len(s.lines))})
		}
	}
	return ups, feed
}

// sendFeed streams lines to the live console. The feed is a courtesy:
// if it fails the lines still reach the step logs, so it is not retried
// until the next job.
func (p *reporter) sendFeed(ctx context.Context, batches []feedBatch) {
	if len(batches) == 0 || p.feedDown {
		return
	}
	if p.feed == nil {
		f, err := p.jc.OpenFeed(ctx)
		if err != nil {
			p.log.Warn("cannot open the live console feed; step logs still arrive at each step's end", "error", err)
			p.feedDown = true
			return
		}
		p.feed = f
	}
	for _, fb := range batches {
		if err := p.feed.Send(ctx, fb.id, fb.start, fb.lines); err != nil {
			p.log.Warn("the live console feed failed", "error", err)
			p.closeFeed()
			p.feedDown = true
			return
		}
		p.with(func(*book) { fb.step.fed = int(fb.start) - 1 + len(fb.lines) })
	}
}

func (p *reporter) closeFeed() {
	if p.feed != nil {
		p.feed.Close()
		p.feed = nil
	}
}

// upload stores a finished step's log, then records that it did, so a
// restarted shim does not store it again.
func (p *reporter) upload(ctx context.Context, u upload) error {
	err := p.jc.UploadStepLog(ctx, u.id, u.log, u.lines)
	p.sh.metrics.apiCall("step_log", err)
	if permanent(err) {
		p.log.Error("GitHub refuses the log of a step; going on without it", "step", u.number, "error", err)
	} else if err != nil {
		return fmt.Errorf("upload the log of step %d: %w", u.number, err)
	}
	p.rec.Uploaded = append(p.rec.Uploaded, u.number)
	if err := p.sh.cfg.Store.SaveJob(ctx, p.rec); err != nil {
		return fmt.Errorf("record the upload of step %d: %w", u.number, err)
	}
	return nil
}

// permanent is a refusal that asking again will not change: a 4xx other
// than the ones that mean "not now" or "who are you".
func permanent(err error) bool {
	var he *protocol.HTTPError
	if !errors.As(err, &he) || he.StatusCode < 400 || he.StatusCode >= 500 {
		return false
	}
	switch he.StatusCode {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return true
}

// finalAttempts bounds the final report: with the backoff it is about ten
// minutes of trying before the job is given up.
const finalAttempts = 12

// final sends everything, the job log, then the conclusion. It retries
// until GitHub has the conclusion, the job is gone, GitHub refuses the
// conclusion for good, or the attempts run out.
func (p *reporter) final(ctx context.Context, conclusion string, outputs map[string]string) error {
	backoff := retry.NewBackoff(p.sh.cfg.Timing.RetryMin, p.sh.cfg.Timing.RetryMax)
	for attempt := 1; ; attempt++ {
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err := p.finalOnce(fctx, conclusion, outputs)
		cancel()
		if err == nil || errors.Is(err, protocol.ErrJobGone) || permanent(err) || attempt == finalAttempts {
			p.closeFeed()
			return err
		}
		d := backoff.Next()
		p.log.Warn("cannot complete the job on GitHub yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func (p *reporter) finalOnce(ctx context.Context, conclusion string, outputs map[string]string) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	var results []protocol.StepResult
	var jobLog []byte
	var lines int64
	p.with(func(b *book) {
		results = b.results()
		jobLog, lines = b.jobLog()
	})
	if !p.rec.JobLog {
		err := p.jc.UploadJobLog(ctx, jobLog, lines)
		p.sh.metrics.apiCall("job_log", err)
		if permanent(err) {
			p.log.Error("GitHub refuses the job log; completing the job without it", "error", err)
		} else if err != nil {
			return fmt.Errorf("upload the job log: %w", err)
		}
		p.rec.JobLog = true
		if err := p.sh.cfg.Store.SaveJob(ctx, p.rec); err != nil {
			return fmt.Errorf("record the job log upload: %w", err)
		}
	}
	req := protocol.CompleteJobRequest{Conclusion: conclusion, StepResults: results, BillingOwnerID: p.rec.BillingOwnerID}
	if len(outputs) > 0 {
		req.Outputs = map[string]protocol.VariableValue{}
		for k, v := range outputs {
			req.Outputs[k] = protocol.VariableValue{Value: v}
		}
	}
	err := p.jc.CompleteJob(ctx, req)
	p.sh.metrics.apiCall("complete_job", err)
	return err
}
