package github

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/dispatch"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/watch"
)

// runner is one registered runner: one broker session, one job at a time.
type runner struct {
	sh     *Shim
	name   string
	label  string // the catalog label its jobs run on
	client *protocol.Client
	tokens *protocol.TokenSource
	log    hclog.Logger

	mu      sync.Mutex
	current *task
}

func (rn *runner) busy() *task {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.current
}

func (rn *runner) status() protocol.Status {
	if rn.busy() != nil {
		return protocol.Busy
	}
	return protocol.Online
}

// start runs t as the runner's job.
func (rn *runner) start(ctx context.Context, t *task, job *dispatch.Job) {
	rn.mu.Lock()
	rn.current = t
	rn.mu.Unlock()
	rn.sh.tasks.Add(1)
	go func() {
		defer rn.sh.tasks.Done()
		t.run(ctx, job)
		rn.mu.Lock()
		if rn.current == t {
			rn.current = nil
		}
		rn.mu.Unlock()
	}()
}

// run holds a broker session and polls it until ctx ends.
func (rn *runner) run(ctx context.Context) {
	retry := watch.NewBackoff(rn.sh.cfg.Timing.RetryMin, rn.sh.cfg.Timing.RetryMax)
	for ctx.Err() == nil {
		sess, err := rn.client.CreateSession(ctx)
		rn.sh.metrics.githubCall(err)
		if err != nil {
			d := retry.Next()
			if errors.Is(err, protocol.ErrSessionConflict) {
				rn.sh.metrics.sessionConflict()
				rn.log.Warn("GitHub says another process holds this runner's session (a second shim with the same runner?); retrying", "in", d)
			} else {
				rn.log.Warn("cannot open a broker session; retrying", "in", d, "error", err)
			}
			watch.Sleep(ctx, d)
			continue
		}
		retry.Reset()
		rn.log.Info("listening for jobs")
		rn.poll(ctx, sess)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := rn.client.DeleteSession(dctx, sess); err != nil {
			rn.log.Debug("delete the broker session", "error", err)
		}
		cancel()
	}
}

// poll long-polls the broker until ctx ends or the session is no longer
// good.
func (rn *runner) poll(ctx context.Context, sess *protocol.Session) {
	retry := watch.NewBackoff(rn.sh.cfg.Timing.RetryMin, rn.sh.cfg.Timing.RetryMax)
	for ctx.Err() == nil {
		msg, err := rn.client.GetMessage(ctx, sess, rn.status())
		if ctx.Err() != nil {
			return
		}
		rn.sh.metrics.githubCall(err)
		if err != nil {
			if !rn.pollFailed(ctx, err, retry) {
				return
			}
			continue
		}
		retry.Reset()
		if msg != nil {
			rn.handle(ctx, sess, msg)
		}
	}
}

// pollFailed waits as the error deserves; it reports whether the session
// is still worth polling.
func (rn *runner) pollFailed(ctx context.Context, err error, retry *watch.Backoff) bool {
	var be *protocol.BrokerError
	if !errors.As(err, &be) {
		d := retry.Next()
		rn.log.Warn("polling GitHub for jobs failed; retrying", "in", d, "error", err)
		return watch.Sleep(ctx, d)
	}
	rn.sh.metrics.brokerError(be.ErrorKind)
	switch be.ErrorKind {
	case protocol.ErrorRunnerVersionTooOld:
		d := rn.sh.cfg.Timing.VersionTooOld
		rn.log.Error("GitHub refuses this runner version and sends it no jobs: set --runner-version to a current actions/runner release", "runner_version", rn.sh.cfg.Info.Version, "github_says", be.Message, "retry_in", d)
		return watch.Sleep(ctx, d)
	case protocol.ErrorRunnerSessionInvalid, protocol.ErrorRunnerNotFound:
		d := retry.Next()
		rn.log.Warn("GitHub dropped the runner's session; opening a new one", "kind", be.ErrorKind, "github_says", be.Message, "in", d)
		watch.Sleep(ctx, d)
		return false
	}
	d := retry.Next()
	rn.log.Warn("the broker refused the poll; retrying", "kind", be.ErrorKind, "github_says", be.Message, "in", d)
	return watch.Sleep(ctx, d)
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
		if t := rn.busy(); t != nil && t.msg.JobID == c.JobID {
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
	if t := rn.busy(); t != nil {
		rn.log.Warn("GitHub offered a job while this runner is busy; leaving it", "request", req.RunnerRequestID)
		return
	}
	if req.ShouldAcknowledge {
		err := rn.client.Acknowledge(ctx, sess, req.RunnerRequestID, protocol.Busy)
		rn.sh.metrics.apiCall("acknowledge", err)
		if err != nil {
			rn.log.Warn("cannot acknowledge the job request; acquiring it anyway", "error", err)
		}
	}
	jm, err := rn.client.AcquireJob(ctx, req, rn.sh.cfg.Info.OS)
	rn.sh.metrics.apiCall("acquire_job", err)
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
		rn.log.Error("cannot start the acquired job", "error", err)
		return
	}
	t.log.Info("acquired a job")
	rn.start(ctx, t, nil)
}
