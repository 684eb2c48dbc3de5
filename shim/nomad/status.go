package nomad

import (
	"context"
	"fmt"
	"sort"
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

// Status reads the job's stage from its newest allocation, when it was
// dispatched and placed, and the driver's boot message.
func (c *Client) Status(ctx context.Context, job *Job) (Status, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	info, _, err := c.API.Jobs().Info(job.ID, q)
	if IsNotFound(err) {
		return Purged, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	stubs, _, err := c.API.Jobs().Allocations(job.ID, true, q)
	if err != nil {
		return Status{}, fmt.Errorf("allocations of %s: %w", job.ID, err)
	}
	var st Status
	switch {
	case len(stubs) > 0:
		sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
		alloc, _, err := c.API.Allocations().Info(stubs[0].ID, q)
		if err != nil {
			return Status{}, fmt.Errorf("allocation of %s: %w", job.ID, err)
		}
		st = statusOf(alloc)
	case info.Stop != nil && *info.Stop:
		// Stopped before it was placed.
		st = Status{Stage: Finished, ExitCode: contract.ExitCancelled, Problem: "cancelled before it was placed"}
	}
	if info.SubmitTime != nil {
		st.Submitted = time.Unix(0, *info.SubmitTime)
	}
	return st, nil
}

// statusOf reads the stage from an allocation and its task's events.
func statusOf(a *api.Allocation) Status {
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

// exitOf finds the task's exit code in its events. A task that never ran
// (driver failure: unknown image, boot timeout) is an infrastructure failure.
func exitOf(ts *api.TaskState) (int, string) {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		e := ts.Events[i]
		switch e.Type {
		case api.TaskTerminated:
			return e.ExitCode, ""
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
