package dispatch

import (
	"context"
	"fmt"
	"sort"

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

// Status is a job's stage and, when known, where and how it runs or ran.
type Status struct {
	Stage    Stage
	AllocID  string
	Node     string
	ExitCode int    // when Finished: the task's exit code (package exitcode)
	Problem  string // when Finished abnormally: what Nomad said (lost node, driver failure)
	alloc    *api.Allocation
}

// Alloc is the allocation behind the status, or nil while queued.
func (s Status) Alloc() *api.Allocation { return s.alloc }

// Status reads a job's stage from its newest allocation.
func (c *Client) Status(ctx context.Context, jobID string) (Status, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.API.Jobs().Allocations(jobID, true, q)
	if err != nil {
		return Status{}, fmt.Errorf("allocations of %s: %w", jobID, err)
	}
	if len(stubs) == 0 {
		return c.unplaced(ctx, jobID)
	}
	sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
	alloc, _, err := c.API.Allocations().Info(stubs[0].ID, q)
	if err != nil {
		return Status{}, fmt.Errorf("allocation of %s: %w", jobID, err)
	}
	return statusOf(alloc), nil
}

// unplaced tells a queued job from one that was stopped before placement.
func (c *Client) unplaced(ctx context.Context, jobID string) (Status, error) {
	job, _, err := c.API.Jobs().Info(jobID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Status{}, fmt.Errorf("job %s: %w", jobID, err)
	}
	if job.Stop != nil && *job.Stop {
		return Status{Stage: Finished, ExitCode: contract.ExitCancelled, Problem: "cancelled before it was placed"}, nil
	}
	return Status{Stage: Queued}, nil
}

// statusOf reads the stage from an allocation and its task's events.
func statusOf(a *api.Allocation) Status {
	st := Status{AllocID: a.ID, Node: a.NodeName, alloc: a, Stage: Booting}
	ts := a.TaskStates[contract.TaskName]
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
