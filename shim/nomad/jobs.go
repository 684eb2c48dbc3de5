package nomad

import (
	"context"
)

// Jobs is what the shims and solstice run need from Nomad. Client
// implements it; the forge shims' tests use fakes.
type Jobs interface {
	// Catalog maps every runs-on label and alias to its canonical label.
	Catalog(ctx context.Context) (map[string]string, error)
	Dispatch(ctx context.Context, req Request) (*Job, error)
	Status(ctx context.Context, job *Job) (Status, error)
	// Follow streams the job's events file from a byte offset (see
	// Client.Follow); st must be placed.
	Follow(ctx context.Context, st Status, from int64, fn func(line []byte, next int64) error) error
	Cancel(ctx context.Context, job *Job) error
	Finish(ctx context.Context, job *Job) error
	InFlight(ctx context.Context, forge, instance string) ([]*Job, error)
}

// Observed is a Jobs that tells Report how each read went, so a shim's
// health check knows whether Nomad answers. A refused dispatch is an
// answer too, so only the reads count.
type Observed struct {
	Jobs
	Report func(error)
}

// Catalog implements Jobs.
func (o Observed) Catalog(ctx context.Context) (map[string]string, error) {
	c, err := o.Jobs.Catalog(ctx)
	o.Report(err)
	return c, err
}

// Status implements Jobs.
func (o Observed) Status(ctx context.Context, job *Job) (Status, error) {
	st, err := o.Jobs.Status(ctx, job)
	o.Report(err)
	return st, err
}

// InFlight implements Jobs.
func (o Observed) InFlight(ctx context.Context, forge, instance string) ([]*Job, error) {
	jobs, err := o.Jobs.InFlight(ctx, forge, instance)
	o.Report(err)
	return jobs, err
}
