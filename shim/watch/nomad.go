package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/dispatch"
	"github.com/solstice-ci/solstice/shim/jobs"
)

// Nomad is what a shim needs from Nomad. Client implements it with
// shim/dispatch and shim/jobs; tests use a fake.
type Nomad interface {
	// Catalog maps every runs-on label and alias to its canonical label.
	Catalog(ctx context.Context) (map[string]string, error)
	Dispatch(ctx context.Context, req dispatch.Request) (*dispatch.Job, error)
	Status(ctx context.Context, job *dispatch.Job) (Status, error)
	// Follow streams the job's events file from a byte offset (see
	// dispatch.Client.Follow); st must be placed.
	Follow(ctx context.Context, st Status, from int64, fn func(line []byte, next int64) error) error
	Cancel(ctx context.Context, job *dispatch.Job) error
	Finish(ctx context.Context, job *dispatch.Job) error
	InFlight(ctx context.Context, forge, instance string) ([]*dispatch.Job, error)
}

// Status is a dispatched job's stage plus the facts Nomad keeps about it
// that the forge log shows. All of them stay the same when read again, so
// rows rendered from them are the same after a shim restart.
type Status struct {
	dispatch.Status
	Submitted time.Time // when the job was dispatched
	Placed    time.Time // when its allocation was created; zero while queued
	// Boot is what the driver said about the VM ("image solstice-test under
	// tcg, ssh on …"); it may be empty.
	Boot string
}

// Client is the production Nomad.
type Client struct {
	Jobs *dispatch.Client
}

// NewClient wraps a dispatch client.
func NewClient(c *dispatch.Client) *Client { return &Client{Jobs: c} }

// Catalog reads the label catalog from the registered parent jobs.
func (n *Client) Catalog(ctx context.Context) (map[string]string, error) {
	return jobs.Catalog(ctx, n.Jobs.API)
}

// Dispatch dispatches a job.
func (n *Client) Dispatch(ctx context.Context, req dispatch.Request) (*dispatch.Job, error) {
	return n.Jobs.Dispatch(ctx, req)
}

// Status reads the job's stage, when it was dispatched and placed, and the
// driver's boot message.
func (n *Client) Status(ctx context.Context, job *dispatch.Job) (Status, error) {
	st, err := n.Jobs.Status(ctx, job.ID)
	if notFound(err) {
		return Purged, nil
	}
	if err != nil {
		return Status{}, err
	}
	out := Status{Status: st}
	info, _, err := n.Jobs.API.Jobs().Info(job.ID, (&api.QueryOptions{}).WithContext(ctx))
	if notFound(err) {
		return Purged, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	if info.SubmitTime != nil {
		out.Submitted = time.Unix(0, *info.SubmitTime)
	}
	if a := st.Alloc(); a != nil {
		out.Placed = time.Unix(0, a.CreateTime)
		out.Boot = bootMessage(a)
	}
	return out, nil
}

// Purged is the status of a job someone removed from Nomad: it is over,
// and nobody will say how it ended.
var Purged = Status{Status: dispatch.Status{Stage: dispatch.Finished, ExitCode: contract.ExitInfrastructure, Problem: "the Nomad job was removed (purged) before it reported a result"}}

func notFound(err error) bool {
	var ue api.UnexpectedResponseError
	return errors.As(err, &ue) && ue.StatusCode() == 404
}

// bootMessage finds the driver's "Booting" task event.
func bootMessage(a *api.Allocation) string {
	ts := a.TaskStates[contract.TaskName]
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

// Follow follows the job's events file.
func (n *Client) Follow(ctx context.Context, st Status, from int64, fn func([]byte, int64) error) error {
	if st.Alloc() == nil {
		return fmt.Errorf("follow: the job has no allocation yet")
	}
	return n.Jobs.Follow(ctx, st.Alloc(), from, fn)
}

// Cancel stops the job.
func (n *Client) Cancel(ctx context.Context, job *dispatch.Job) error {
	return n.Jobs.Cancel(ctx, job.ID)
}

// Finish removes the job's secrets.
func (n *Client) Finish(ctx context.Context, job *dispatch.Job) error {
	return n.Jobs.Finish(ctx, job)
}

// InFlight lists the jobs a runner still owes the forge a result for.
func (n *Client) InFlight(ctx context.Context, forge, instance string) ([]*dispatch.Job, error) {
	return n.Jobs.InFlight(ctx, forge, instance)
}
