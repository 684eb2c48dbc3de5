package github

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/retry"
)

// runner is one registered runner: one broker session, one job at a time.
type runner struct {
	sh        *Shim
	name      string
	label     string // the catalog label its jobs run on
	ephemeral bool   // a JIT or ephemeral runner: GitHub removes it after one job
	client    *protocol.Client
	tokens    *protocol.TokenSource
	log       hclog.Logger

	mu      sync.Mutex
	jobs    map[string]*task // by GitHub job id; more than one only after a restart
	retired bool
}

func (rn *runner) task(jobID string) *task {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.jobs[jobID]
}

func (rn *runner) status() protocol.Status {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if len(rn.jobs) > 0 {
		return protocol.Busy
	}
	return protocol.Online
}

// start runs t as one of the runner's jobs. An ephemeral runner retires
// once its job is concluded: GitHub sends it no other.
func (rn *runner) start(ctx context.Context, t *task, job *nomad.Job) {
	rn.mu.Lock()
	rn.jobs[t.msg.JobID] = t
	rn.mu.Unlock()
	rn.sh.tasks.Add(1)
	go func() {
		defer rn.sh.tasks.Done()
		t.run(ctx, job)
		rn.mu.Lock()
		delete(rn.jobs, t.msg.JobID)
		rn.mu.Unlock()
		if rn.ephemeral && t.concluded {
			rn.retire(ctx, "its one job is done")
		}
	}()
}

// retire stops an ephemeral runner's polling and forgets its credentials.
func (rn *runner) retire(ctx context.Context, why string) {
	rn.mu.Lock()
	already := rn.retired
	rn.retired = true
	rn.mu.Unlock()
	if already {
		return
	}
	rn.log.Info("retiring the ephemeral runner", "why", why)
	if err := rn.sh.cfg.Store.DeleteRunner(context.WithoutCancel(ctx), rn.name); err != nil {
		rn.log.Warn("cannot delete the retired runner's credentials", "error", err)
	}
}

func (rn *runner) isRetired() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.retired
}

// run holds a broker session and polls it until ctx ends or the runner
// retires. One backoff spans sessions and polls, so a broker that takes
// sessions but refuses every poll is not asked again and again.
func (rn *runner) run(ctx context.Context) {
	backoff := retry.NewBackoff(rn.sh.cfg.Timing.RetryMin, rn.sh.cfg.Timing.RetryMax)
	for ctx.Err() == nil && !rn.isRetired() {
		sess, err := rn.client.CreateSession(ctx)
		rn.sh.metrics.githubCall(err)
		if err != nil {
			d := backoff.Next()
			if errors.Is(err, protocol.ErrSessionConflict) {
				rn.sh.metrics.sessionConflict()
				rn.log.Warn("GitHub says another process holds this runner's session (a second shim with the same runner?); retrying", "in", d)
			} else {
				rn.log.Warn("cannot open a broker session; retrying", "in", d, "error", err)
			}
			retry.Sleep(ctx, d)
			continue
		}
		rn.log.Info("listening for jobs")
		rn.poll(ctx, sess, backoff)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := rn.client.DeleteSession(dctx, sess); err != nil {
			rn.log.Debug("delete the broker session", "error", err)
		}
		cancel()
	}
}

// poll long-polls the broker until ctx ends or the session is no longer
// good.
func (rn *runner) poll(ctx context.Context, sess *protocol.Session, backoff *retry.Backoff) {
	for ctx.Err() == nil && !rn.isRetired() {
		msg, err := rn.client.GetMessage(ctx, sess, rn.status())
		if ctx.Err() != nil {
			return
		}
		rn.sh.metrics.githubCall(err)
		if err != nil {
			if !rn.pollFailed(ctx, err, backoff) {
				return
			}
			continue
		}
		backoff.Reset()
		if msg != nil {
			rn.handle(ctx, sess, msg)
		}
	}
}

// pollFailed waits as the error deserves; it reports whether the session
// is still worth polling.
func (rn *runner) pollFailed(ctx context.Context, err error, backoff *retry.Backoff) bool {
	var be *protocol.BrokerError
	if !errors.As(err, &be) {
		d := backoff.Next()
		rn.log.Warn("polling GitHub for jobs failed; retrying", "in", d, "error", err)
		return retry.Sleep(ctx, d)
	}
	rn.sh.metrics.brokerError(be.ErrorKind)
	switch be.ErrorKind {
	case protocol.ErrorRunnerVersionTooOld:
		d := rn.sh.cfg.Timing.VersionTooOld
		rn.log.Error("GitHub refuses this runner version and sends it no jobs: set --runner-version to a current actions/runner release", "runner_version", rn.sh.cfg.Info.Version, "github_says", be.Message, "retry_in", d)
		return retry.Sleep(ctx, d)
	case protocol.ErrorRunnerNotFound:
		if rn.ephemeral {
			rn.retire(ctx, "GitHub no longer knows it")
			return false
		}
		d := backoff.Next()
		rn.log.Error("GitHub does not know this runner (removed on GitHub?); register it again", "github_says", be.Message, "retry_in", d)
		retry.Sleep(ctx, d)
		return false
	case protocol.ErrorRunnerSessionInvalid:
		d := backoff.Next()
		rn.log.Warn("GitHub dropped the runner's session; opening a new one", "kind", be.ErrorKind, "github_says", be.Message, "in", d)
		retry.Sleep(ctx, d)
		return false
	}
	d := backoff.Next()
	rn.log.Warn("the broker refused the poll; retrying", "kind", be.ErrorKind, "github_says", be.Message, "in", d)
	return retry.Sleep(ctx, d)
}

func (rn *runner) handle(ctx context.Context, sess *protocol.Session, msg *protocol.Message) {
	rn.sh.metrics.message(msg.MessageType)
	switch msg.MessageType {
	case protocol.MessageRunnerJobRequest:
		rn.jobRequest(ctx, sess, msg)
	case protocol.MessageJobCancellation:
		c, err := protocol.ParseJobCancellation(msg.Body)
		if err != nil {
			rn.log.Warn("ignoring a malformed JobCancellation", "error", err)
			return
		}
		if t := rn.task(c.JobID); t != nil {
			t.cancel()
			return
		}
		rn.log.Info("GitHub cancelled a job this runner does not run", "github_job", c.JobID)
	case protocol.MessageBrokerMigration:
		rn.log.Info("GitHub moved the runner to another broker; polling there from now on", "broker", sess.BrokerURL())
	case protocol.MessageForceTokenRefresh:
		rn.log.Info("GitHub asked for a new access token")
		rn.tokens.Invalidate()
	default:
		rn.log.Debug("ignoring a message", "type", msg.MessageType)
	}
}

// jobRequest acknowledges, acquires and starts a job.
func (rn *runner) jobRequest(ctx context.Context, sess *protocol.Session, msg *protocol.Message) {
	req, err := protocol.ParseRunnerJobRequest(msg.Body)
	if err != nil {
		rn.log.Warn("ignoring a malformed RunnerJobRequest", "error", err)
		return
	}
	if rn.status() == protocol.Busy {
		rn.log.Warn("GitHub offered a job while this runner is busy; leaving it", "request", req.RunnerRequestID)
		return
	}
	if req.ShouldAcknowledge && !rn.acknowledge(ctx, sess, req) {
		return
	}
	jm, err := rn.acquire(ctx, req)
	if err != nil {
		rn.log.Warn("cannot acquire the job; GitHub offers it again or to another runner", "request", req.RunnerRequestID, "error", err)
		return
	}
	rec := &Record{JobID: jm.JobID, Runner: rn.name, RunServiceURL: req.RunServiceURL,
		BillingOwnerID: req.BillingOwnerID, Acquired: time.Now().UTC(), Message: jm.Raw}
	if err := rn.sh.cfg.Store.SaveJob(ctx, rec); err != nil {
		rn.log.Error("cannot record the acquired job in Nomad; a shim restart would lose it", "error", err)
	}
	t, err := rn.sh.newTask(rn, rec, jm)
	if err != nil {
		rn.log.Error("cannot run the acquired job: its message is unusable", "github_job", jm.JobID, "error", err)
		if err := rn.sh.cfg.Store.DeleteJob(ctx, jm.JobID); err != nil {
			rn.log.Warn("cannot delete the job's record", "error", err)
		}
		return
	}
	t.log.Info("acquired a job")
	rn.start(ctx, t, nil)
}

// acknowledge tells the broker the runner takes the request; it reports
// whether to go on (a request the broker no longer has is skipped).
func (rn *runner) acknowledge(ctx context.Context, sess *protocol.Session, req *protocol.RunnerJobRequest) bool {
	err := rn.client.Acknowledge(ctx, sess, req.RunnerRequestID, protocol.Busy)
	rn.sh.metrics.apiCall("acknowledge", err)
	var be *protocol.BrokerError
	if errors.As(err, &be) && be.ErrorKind == protocol.ErrorAcknowledgeJobNotFound {
		rn.log.Info("the job request is gone before it was acknowledged; skipping it", "request", req.RunnerRequestID)
		return false
	}
	if err != nil {
		rn.log.Warn("cannot acknowledge the job request; acquiring it anyway", "error", err)
	}
	return true
}

// acquire fetches the job message, retrying passing failures as the
// official runner does; a job GitHub gave elsewhere is not retried.
func (rn *runner) acquire(ctx context.Context, req *protocol.RunnerJobRequest) (*protocol.JobMessage, error) {
	backoff := retry.NewBackoff(rn.sh.cfg.Timing.RetryMin, rn.sh.cfg.Timing.RetryMax)
	for attempt := 1; ; attempt++ {
		jm, err := rn.client.AcquireJob(ctx, req, rn.sh.cfg.Info.OS)
		rn.sh.metrics.apiCall("acquire_job", err)
		if err == nil || errors.Is(err, protocol.ErrJobGone) || attempt == 5 {
			return jm, err
		}
		d := backoff.Next()
		rn.log.Warn("cannot acquire the job yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}
