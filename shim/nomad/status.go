package nomad

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Stage is where a dispatched job is, as a forge user would describe it.
type Stage int

// The stages, in order.
const (
	Queued   Stage = iota // waiting for a client with room (a blocked evaluation)
	Booting               // placed: fetching the image, booting the VM
	Running               // the guest is up and running the job
	Finished              // the task is over; see Status.ExitCode
)

func (s Stage) String() string {
	return [...]string{"queued", "booting", "running", "finished"}[s]
}

// Status is a dispatched job's stage plus the facts Nomad keeps about it
// that a forge log shows. All of them stay the same when read again, so
// rows rendered from them are the same after a shim restart.
type Status struct {
	Stage    Stage
	AllocID  string
	NodeID   string // where Follow reaches the allocation's files
	Node     string // the node's name, for people
	ExitCode int    // when Finished: the task's exit code (contract.Exit*)
	Problem  string // when Finished abnormally: what Nomad said (lost node, driver failure)

	Submitted time.Time // when the job was dispatched
	Placed    time.Time // when its allocation was created; zero while queued
	// Boot is what the driver said about the VM ("image solstice-test under
	// tcg, ssh on …"); it may be empty.
	Boot string
}

// Purged is the status of a job someone removed from Nomad: it is over,
// and nobody will say how it ended.
var Purged = Status{Stage: Finished, ExitCode: contract.ExitInfrastructure, Problem: "the Nomad job was removed (purged) before it reported a result"}

// learned is what Status found out about a job that never changes again,
// so that every later read needs one request only.
type learned struct {
	mu        sync.Mutex
	submitted time.Time
	// left is set once the job left the queue (placed, or stopped):
	// from then on its allocations tell everything.
	left    bool
	stopped bool // stopped: no allocation means cancelled before placement
}

func (l *learned) get() (submitted time.Time, left, stopped bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.submitted, l.left, l.stopped
}

// fromJob learns from the job itself (or its list stub).
func (l *learned) fromJob(submitTime int64, status string, stop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.submitted = time.Unix(0, submitTime)
	l.left = l.left || stop || (status != "" && status != "pending")
	l.stopped = l.stopped || stop
}

// Status reads the job's status with one Nomad request. No single
// endpoint has every fact at every stage: the job has its submit time and
// tells a queued job from a stopped or purged one, but says nothing of
// its allocation; the job's allocations have the node, the task's state,
// events and exit code and the placement time, but are empty while the
// job is queued, stopped or purged alike. So Status reads the job until
// it has left the queue, then only its allocations, keeping what the job
// said on the Job (it never changes). The read that sees the job leave
// the queue still reports it queued; the next one has its allocation.
func (c *Client) Status(ctx context.Context, job *Job) (Status, error) {
	submitted, left, stopped := job.learned.get()
	if !left {
		return c.queued(ctx, job)
	}
	stubs, _, err := c.API.Jobs().Allocations(job.ID, true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Status{}, fmt.Errorf("allocations of %s: %w", job.ID, err)
	}
	var st Status
	switch {
	case len(stubs) > 0:
		sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
		st = statusOf(stubs[0])
	case stopped:
		st = Status{Stage: Finished, ExitCode: contract.ExitCancelled, Problem: "cancelled before it was placed"}
	default: // it had left the queue, so its allocations were collected
		st = Purged
	}
	st.Submitted = submitted
	return st, nil
}

// queued reads the job while it waits in the queue.
func (c *Client) queued(ctx context.Context, job *Job) (Status, error) {
	info, _, err := c.API.Jobs().Info(job.ID, (&api.QueryOptions{}).WithContext(ctx))
	if IsNotFound(err) {
		return Purged, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	job.learned.fromJob(deref(info.SubmitTime), deref(info.Status), deref(info.Stop))
	submitted, _, _ := job.learned.get()
	return Status{Stage: Queued, Submitted: submitted}, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// statusOf reads the stage from an allocation and its task's events.
func statusOf(a *api.AllocationListStub) Status {
	st := Status{AllocID: a.ID, NodeID: a.NodeID, Node: a.NodeName, Stage: Booting, Placed: time.Unix(0, a.CreateTime)}
	ts := a.TaskStates[contract.TaskName]
	st.Boot = bootMessage(ts)
	switch {
	case a.ClientStatus == api.AllocClientStatusLost:
		st.Stage, st.ExitCode, st.Problem = Finished, contract.ExitInfrastructure, "the Nomad client running the job was lost"
		return st
	case ts == nil:
		return st
	case ts.State == "running":
		st.Stage = Running
	case ts.State == "dead":
		st.Stage = Finished
		st.ExitCode, st.Problem = exitOf(ts)
	}
	return st
}

// exitOf finds the task's exit code in its events, and what went wrong:
// the driver's error when the job could not finish (it lost the guest,
// the guest broke the stream), or why a task never ran (driver failure:
// unknown image, boot timeout), an infrastructure failure.
func exitOf(ts *api.TaskState) (int, string) {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		e := ts.Events[i]
		switch e.Type {
		case api.TaskTerminated:
			return e.ExitCode, e.Message
		case api.TaskDriverFailure, api.TaskSetupFailure, api.TaskFailedValidation:
			return contract.ExitInfrastructure, e.DisplayMessage
		case api.TaskKilled:
			return contract.ExitCancelled, ""
		}
	}
	if ts.Failed {
		return contract.ExitInfrastructure, "the task failed without an exit code"
	}
	return 0, ""
}

// bootMessage finds the driver's "Booting" task event.
func bootMessage(ts *api.TaskState) string {
	if ts == nil {
		return ""
	}
	for _, e := range ts.Events {
		if e.Type == "Driver" && e.DriverMessage == "Booting" {
			return e.Details["detail"]
		}
	}
	return ""
}
