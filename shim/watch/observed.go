package watch

import (
	"context"

	"github.com/solstice-ci/solstice/shim/dispatch"
)

// Observed is a Nomad that tells Report how each read went, so a shim's
// health check knows whether Nomad answers. A refused dispatch is an
// answer too, so only the reads count.
type Observed struct {
	Nomad
	Report func(error)
}

// Catalog implements Nomad.
func (o Observed) Catalog(ctx context.Context) (map[string]string, error) {
	c, err := o.Nomad.Catalog(ctx)
	o.Report(err)
	return c, err
}

// Status implements Nomad.
func (o Observed) Status(ctx context.Context, job *dispatch.Job) (Status, error) {
	st, err := o.Nomad.Status(ctx, job)
	o.Report(err)
	return st, err
}

// InFlight implements Nomad.
func (o Observed) InFlight(ctx context.Context, forge, instance string) ([]*dispatch.Job, error) {
	jobs, err := o.Nomad.InFlight(ctx, forge, instance)
	o.Report(err)
	return jobs, err
}
