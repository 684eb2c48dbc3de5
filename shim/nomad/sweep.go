package nomad

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/retry"
)

// SweepAge is how old a secrets Variable must be before SweepSecrets may
// remove it: Dispatch stores the secrets before it dispatches the job, so
// a young Variable without a job may be one being dispatched right now.
const SweepAge = 10 * time.Minute

// SweepSecrets removes the job secrets whose dispatched job Nomad no
// longer has (it was purged or garbage-collected before a shim finished
// it), at least minAge old, and returns how many it removed. A job that
// still exists keeps its secrets: a shim owes it a result and its Finish
// removes them.
func (c *Client) SweepSecrets(ctx context.Context, minAge time.Duration) (int, error) {
	vars, _, err := c.API.Variables().PrefixList(contract.SecretsPrefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("sweep secrets: list: %w", err)
	}
	owned, err := c.secretsKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep secrets: %w", err)
	}
	cutoff := time.Now().Add(-minAge).UnixNano()
	removed := 0
	for _, v := range vars {
		key := strings.TrimPrefix(v.Path, contract.SecretsPrefix)
		if owned[key] || v.CreateTime > cutoff {
			continue
		}
		if err := c.deleteSecrets(ctx, key); err != nil {
			return removed, fmt.Errorf("sweep secrets: %w", err)
		}
		removed++
	}
	return removed, nil
}

// secretsKeys are the secrets keys of every dispatched job Nomad has.
func (c *Client) secretsKeys(ctx context.Context) (map[string]bool, error) {
	stubs, err := c.listJobs(ctx)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, s := range stubs {
		if !strings.HasPrefix(s.ParentID, contract.ParentPrefix) {
			continue
		}
		meta, _, err := c.jobMeta(ctx, s)
		if err != nil {
			return nil, err
		}
		keys[meta[contract.MetaSecretsKey]] = true
	}
	return keys, nil
}

// Sweeper is a Jobs that can remove orphaned secrets (Client can).
type Sweeper interface {
	SweepSecrets(ctx context.Context, minAge time.Duration) (int, error)
}

// SweepSecrets implements Sweeper when the wrapped Jobs does.
func (o Observed) SweepSecrets(ctx context.Context, minAge time.Duration) (int, error) {
	if s, ok := o.Jobs.(Sweeper); ok {
		return s.SweepSecrets(ctx, minAge)
	}
	return 0, nil
}

// SweepInterval is how often a shim sweeps orphaned secrets.
const SweepInterval = 10 * time.Minute

// SweepEvery sweeps orphaned secrets at once and then every interval
// until ctx ends, so secrets a crashed shim left behind do not outlive
// their jobs. A Jobs that cannot sweep (a test's fake) is left alone.
func SweepEvery(ctx context.Context, jobs Jobs, every time.Duration, log hclog.Logger) {
	s, ok := jobs.(Sweeper)
	if !ok {
		return
	}
	for {
		n, err := s.SweepSecrets(ctx, SweepAge)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("could not sweep orphaned job secrets", "error", err)
		case n > 0:
			log.Info("removed the secrets of jobs Nomad no longer has", "count", n)
		}
		if !retry.Sleep(ctx, every) {
			return
		}
	}
}
