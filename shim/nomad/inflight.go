package nomad

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// InFlight lists the dispatched jobs of one forge instance that a shim
// still owes a result, straight from Nomad: a job counts until Finish has
// removed its secrets, so one that ended while no shim watched is found too.
// It costs one request for the list and one per job of the instance.
func (c *Client) InFlight(ctx context.Context, forge, instance string) ([]*Job, error) {
	stubs, err := c.listJobs(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, s := range stubs {
		if s.ParentID == "" || !strings.HasPrefix(s.ParentID, contract.ParentPrefix) {
			continue
		}
		meta, _, err := c.jobMeta(ctx, s)
		if err != nil {
			return nil, err
		}
		m := metaFrom(meta)
		if m.Forge != forge || m.Instance != instance {
			continue
		}
		key := meta[contract.MetaSecretsKey]
		v, _, err := c.API.Variables().Peek(contract.SecretsPrefix+key, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("look up secrets of %s: %w", s.ID, err)
		}
		if v == nil {
			continue // finished and reported
		}
		plan, err := c.dispatchedPlan(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		job := &Job{ID: s.ID, Label: strings.TrimPrefix(s.ParentID, contract.ParentPrefix), Meta: m, SecretsKey: key,
			Steps: len(plan.Steps), Debug: plan.Debug != nil}
		job.learned.fromJob(s.SubmitTime, s.Stop)
		jobs = append(jobs, job)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
	return jobs, nil
}

// listJobs lists the namespace's jobs with their meta, in one request.
func (c *Client) listJobs(ctx context.Context) ([]*api.JobListStub, error) {
	opts := &api.JobListOptions{Fields: &api.JobListFields{Meta: true}}
	stubs, _, err := c.API.Jobs().ListOptions(opts, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return stubs, nil
}

// jobMeta is a listed job's meta and whether it is parameterized. A
// server that ignores meta=true lists no meta: the job itself is read
// then.
func (c *Client) jobMeta(ctx context.Context, s *api.JobListStub) (map[string]string, bool, error) {
	if s.Meta != nil {
		return s.Meta, s.ParameterizedJob, nil
	}
	job, _, err := c.API.Jobs().Info(s.ID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("read job %s: %w", s.ID, err)
	}
	return job.Meta, job.ParameterizedJob != nil, nil
}

// dispatchedPlan reads a dispatched job's plan back from its payload, for
// the step count a resumed job's events are checked against (the guest's
// own job_started is not to be trusted) and whether it asked for a debug
// session. A payload that is no plan gives an empty plan.
func (c *Client) dispatchedPlan(ctx context.Context, id string) (*contract.Plan, error) {
	job, _, err := c.API.Jobs().Info(id, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	p, err := contract.DecodePlanAuto(bytes.NewReader(job.Payload))
	if err != nil {
		c.log().Warn("cannot read the plan of a dispatched job; its guest's step count is taken", "job", id, "error", err)
		return &contract.Plan{}, nil
	}
	return p, nil
}
