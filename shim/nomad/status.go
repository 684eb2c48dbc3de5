package nomad

import (
	"context"
	"fmt"
	"sort"
	"strings"
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
	// Stuck is set when the task cannot start and Nomad will not end it by
	// itself (its template waits for a Variable it cannot read): Problem
	// says why, and the job is to be stopped and reported as failed.
	Stuck bool
	// Displaced is set when Nomad took the job off its node (the node was
	// lost, or drained past its deadline) and would place it again
	// elsewhere: the job is over, and whoever tracks it must stop the
	// Nomad job so that nothing runs it a second time.
	Displaced bool

	Submitted time.Time // when the job was dispatched
	Placed    time.Time // when its allocation was created; zero while queued
	// Boot is what the driver said about the VM ("image solstice-test under
	// tcg, ssh on …"); it may be empty.
	Boot string
	// Download is the driver's latest word on a first download of the
	// image ("solstice-test: 12.5 MiB of 79.6 MiB (15%), 2.1 MiB/s"); empty
	// when the image was already on the client.
	Download string
}

// Purged is the status of a job someone removed from Nomad: it is over,
// and nobody will say how it ended.
var Purged = Status{Stage: Finished, ExitCode: contract.ExitInfrastructure, Problem: "the Nomad job was removed (purged) before it reported a result"}

// probeEvery is how often, while a job has no allocation, a status read
// reads the job instead of its (empty) allocation list: often enough to
// notice soon that someone else stopped or purged a queued job.
const probeEvery = 5

// learned is what the Client found out about a job that never changes
// again: kept on the Job, it lets each status read be one request.
type learned struct {
	mu        sync.Mutex
	submitted time.Time
	placed    bool // an allocation was seen: no more probes
	stopped   bool // with no allocation, it was cancelled before placement
	reads     int  // status reads while it had no allocation
}

// fromJob learns from the job itself, or its list stub.
func (l *learned) fromJob(submitTime int64, stop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if submitTime != 0 {
		l.submitted = time.Unix(0, submitTime)
	}
	l.stopped = l.stopped || stop
}

func (l *learned) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

// probeDue counts a read and says whether it is to read the job.
func (l *learned) probeDue() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.placed {
		return false
	}
	l.reads++
	return l.reads%probeEvery == 0
}

// sawAllocations notes whether the job has allocations and returns what
// the allocations cannot say.
func (l *learned) sawAllocations(any bool) (submitted time.Time, placed, stopped bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.placed = l.placed || any
	return l.submitted, l.placed, l.stopped
}

// Status reads the job's status with one Nomad request. No endpoint has
// every fact at every stage: the job's allocation list has the node, the
// task's state, events and exit code and the placement time, but is empty
// while the job is queued, stopped or purged alike; the job itself tells
// those apart and has the submit time, but says nothing of its
// allocation. So Status reads the allocations, and what only the job
// says is kept on the Job: its submit time (read once by Dispatch or
// InFlight) and whether it was stopped (Cancel knows). While there is no
// allocation, every probeEvery-th read reads the job instead, to notice a
// stop or purge by someone else; that read reports the job queued.
func (c *Client) Status(ctx context.Context, job *Job) (Status, error) {
	if job.learned.probeDue() {
		return c.probe(ctx, job)
	}
	stubs, _, err := c.API.Jobs().Allocations(job.ID, true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Status{}, fmt.Errorf("allocations of %s: %w", job.ID, err)
	}
	submitted, placed, stopped := job.learned.sawAllocations(len(stubs) > 0)
	var st Status
	switch {
	case len(stubs) > 0:
		st = statusOfAllocs(stubs)
		if st.Stuck {
			st.Problem += ": " + missingHint(st.Problem, contract.ParentJob(job.Label))
		}
	case stopped:
		st = Status{Stage: Finished, ExitCode: contract.ExitCancelled, Problem: "cancelled before it was placed"}
	case placed: // it had an allocation: it was purged and collected
		st = Purged
	}
	st.Submitted = submitted
	return st, nil
}

// probe reads the job while it has no allocation: it may have been
// stopped or purged, or just placed (the next read finds its allocation).
func (c *Client) probe(ctx context.Context, job *Job) (Status, error) {
	err := c.learnJob(ctx, job)
	if IsNotFound(err) {
		return Purged, nil
	}
	if err != nil {
		return Status{}, err
	}
	submitted, _, _ := job.learned.sawAllocations(false)
	return Status{Stage: Queued, Submitted: submitted}, nil
}

// learnJob reads the job for what only it says.
func (c *Client) learnJob(ctx context.Context, job *Job) error {
	info, _, err := c.API.Jobs().Info(job.ID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("job %s: %w", job.ID, err)
	}
	job.learned.fromJob(deref(info.SubmitTime), deref(info.Stop))
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// statusOfAllocs reads the status from a job's allocations. The first one
// Nomad took off its node decides: a replacement Nomad placed for it is a
// second run nobody asked for, which the tracker stops. Otherwise the
// newest decides.
func statusOfAllocs(stubs []*api.AllocationListStub) Status {
	sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
	for i := len(stubs) - 1; i >= 0; i-- {
		if why := displacedBy(stubs[i]); why != "" {
			st := statusOf(stubs[i])
			st.Stage, st.ExitCode, st.Displaced = Finished, contract.ExitInfrastructure, true
			st.Problem = why
			return st
		}
	}
	return statusOf(stubs[0])
}

// allocMigrating is the desired-status description Nomad's scheduler gives
// an allocation it stops to move it elsewhere (a drain reached its
// deadline, or `nomad alloc stop`).
const allocMigrating = "alloc is being migrated"

// displacedBy says why Nomad took the allocation off its node, naming
// the node, or "" when it did not.
func displacedBy(a *api.AllocationListStub) string {
	switch {
	case a.ClientStatus == api.AllocClientStatusLost:
		return fmt.Sprintf("the Nomad client node %s running the job was lost (it stopped heartbeating: agent or host down); the job was not re-run", nodeName(a))
	case a.DesiredStatus == api.AllocDesiredStatusStop && a.DesiredDescription == allocMigrating:
		return fmt.Sprintf("Nomad stopped the job on client node %s to move it elsewhere (the node is draining, or someone stopped the allocation); the job was not re-run", nodeName(a))
	}
	return ""
}

// nodeName names a node for people and for grep: its name and its ID.
func nodeName(a *api.AllocationListStub) string {
	return fmt.Sprintf("%q (ID %s)", a.NodeName, a.NodeID)
}

// statusOf reads the stage from an allocation and its task's events.
func statusOf(a *api.AllocationListStub) Status {
	st := Status{AllocID: a.ID, NodeID: a.NodeID, Node: a.NodeName, Stage: Booting, Placed: time.Unix(0, a.CreateTime)}
	ts := a.TaskStates[contract.TaskName]
	st.Boot = bootMessage(ts)
	st.Download = downloadMessage(ts)
	switch {
	case ts == nil:
		return st
	case ts.State == "pending":
		st.Problem, st.Stuck = missingTemplate(ts, time.Now())
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

// templateGrace is how long a task may wait for a template's data before
// the job is given up: Nomad reports a missing dependency only after it
// has been missing a few seconds already, and keeps waiting for good.
const templateGrace = 10 * time.Second

// missingTemplate finds the event Nomad emits while a task's template
// waits for data it cannot read ("Missing: nomad.var.block(path@ns.region)"
// for a Variable that is gone or that the job's identity may not read).
// Once that has lasted templateGrace the task will not start.
func missingTemplate(ts *api.TaskState, now time.Time) (string, bool) {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		e := ts.Events[i]
		if e.Type != templateEvent || !strings.HasPrefix(e.DisplayMessage, "Missing: ") {
			continue
		}
		if now.Sub(time.Unix(0, e.Time)) < templateGrace {
			return "", false
		}
		msg := e.DisplayMessage
		if len(msg) > 300 { // a Nomad message, but bound what reaches a forge
			msg = msg[:300] + "…"
		}
		return "the task cannot start: its template waits for data Nomad will not give it (" + msg + ")", true
	}
	return "", false
}

// templateEvent is the type of the task events Nomad's template runner
// emits.
const templateEvent = "Template"

// downloadPrefix starts the driver's image download events (see
// driver/plugin.MsgDownloading; the shims do not import the driver).
const downloadPrefix = "Downloading image: "

// downloadMessage is the driver's latest download progress event, without
// its prefix.
func downloadMessage(ts *api.TaskState) string {
	if ts == nil {
		return ""
	}
	for i := len(ts.Events) - 1; i >= 0; i-- {
		e := ts.Events[i]
		if e.Type == "Driver" && strings.HasPrefix(e.DriverMessage, downloadPrefix) {
			return strings.TrimPrefix(e.DriverMessage, downloadPrefix)
		}
	}
	return ""
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
