package forgejo

import (
	"context"

	"github.com/solstice-ci/solstice/shim/dispatch"
	"github.com/solstice-ci/solstice/shim/watch"
)

// observed records whether Nomad answers, for /healthz. A refused
// dispatch is an answer too, so only the reads count.
type observed struct {
	watch.Nomad
	m *Metrics
}

func (o observed) Catalog(ctx context.Context) (map[string]string, error) {
	c, err := o.Nomad.Catalog(ctx)
	o.m.nomadCall(err)
	return c, err
}

func (o observed) Status(ctx context.Context, job *dispatch.Job) (watch.Status, error) {
	st, err := o.Nomad.Status(ctx, job)
	o.m.nomadCall(err)
	return st, err
}

func (o observed) InFlight(ctx context.Context, forge, instance string) ([]*dispatch.Job, error) {
	jobs, err := o.Nomad.InFlight(ctx, forge, instance)
	o.m.nomadCall(err)
	return jobs, err
}
