package nomad

import (
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
func (c *Client) InFlight(ctx context.Context, forge, instance string) ([]*Job, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.API.Jobs().List(q)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []*Job
	for _, s := range stubs {
		if s.ParentID == "" || !strings.HasPrefix(s.ParentID, contract.ParentPrefix) {
			continue
		}
		full, _, err := c.API.Jobs().Info(s.ID, q)
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", s.ID, err)
		}
		m := metaFrom(full.Meta)
		if m.Forge != forge || m.Instance != instance {
			continue
		}
		key := full.Meta[contract.MetaSecretsKey]
		v, _, err := c.API.Variables().Peek(contract.SecretsPrefix+key, q)
		if err != nil {
			return nil, fmt.Errorf("look up secrets of %s: %w", s.ID, err)
		}
		if v == nil {
			continue // finished and reported
		}
		jobs = append(jobs, &Job{ID: s.ID, Label: strings.TrimPrefix(s.ParentID, contract.ParentPrefix), Meta: m, SecretsKey: key})
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
	return jobs, nil
}
