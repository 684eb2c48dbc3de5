package forgejo

import (
	"fmt"
	"maps"
	"slices"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/cache"
	"github.com/solstice-ci/solstice/shim/forge"
)

// What the guest's built-in artifact and cache actions read.
const (
	runtimeTokenSecret = "ACTIONS_RUNTIME_TOKEN"
	resultsURLEnv      = "ACTIONS_RESULTS_URL"
	cacheTokenSecret   = "ACTIONS_CACHE_TOKEN"
	cacheURLEnv        = "ACTIONS_CACHE_URL"
)

// CacheAccess is how jobs reach the shim's cache service.
type CacheAccess struct {
	URL    string // as guests reach it (through the egress allow-list)
	Minter *cache.Minter
	TTL    time.Duration // a token's life: at least the longest job
}

// grant adds a cache token for the task's repository to secrets and the
// service's URL to the plan's env.
func (a *CacheAccess) grant(p *contract.Plan, secrets map[string]string, repo string) error {
	if a == nil || repo == "" {
		return nil
	}
	tok, err := a.Minter.Mint(repo, a.TTL)
	if err != nil {
		return fmt.Errorf("mint cache token for %s: %w", repo, err)
	}
	secrets[cacheTokenSecret] = tok
	p.Secrets = append(p.Secrets, cacheTokenSecret)
	slices.Sort(p.Secrets)
	p.Env = append(p.Env, contract.EnvVar{Name: cacheURLEnv, Value: a.URL})
	return nil
}

// runtimeTokenKeys are the task-context keys that carry the job's
// runtime token (Gitea, Forgejo), first found wins.
var runtimeTokenKeys = []string{"gitea_runtime_token", "forgejo_runtime_token", "runtime_token"}

// jobSecrets are the task's secrets plus its runtime token, which the
// guest needs to reach the forge's artifact service. It travels like every
// secret (Nomad Variable, masked in logs), never in the plan.
func jobSecrets(task *runnerv1.Task) map[string]string {
	out := maps.Clone(task.Secrets)
	if out == nil {
		out = map[string]string{}
	}
	if task.Context == nil {
		return out
	}
	ctx := task.Context.AsMap()
	for _, k := range runtimeTokenKeys {
		if tok := forge.Text(ctx[k]); tok != "" {
			out[runtimeTokenSecret] = tok
			break
		}
	}
	return out
}

// addResultsURL puts the forge's results service (its own root URL on
// Gitea and Forgejo, which serve the artifact v4 API there) into the job
// env, after the workflow's own env so it cannot be redirected by
// accident.
func addResultsURL(p *contract.Plan, github map[string]any) {
	if server := forge.Text(github["server_url"]); server != "" {
		p.Env = append(p.Env, contract.EnvVar{Name: resultsURLEnv, Value: server})
	}
}
