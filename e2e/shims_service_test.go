//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// The shims' service names in runner-shims.nomad.hcl.
const (
	forgejoService = "solstice-forgejo"
	githubService  = "solstice-github"
)

// runShims runs jobspecs/runner-shims.nomad.hcl with `nomad job run`, as an
// operator would, for Gitea g, with the registration token in the job's
// Variable. provider empty keeps the jobspec's default; vars are more
// -var arguments (a solstice_binary among them replaces bin/solstice).
func runShims(t *testing.T, g *Gitea, n *Nomad, runner, provider string, vars ...string) {
	t.Helper()
	v := &api.Variable{Path: "nomad/jobs/solstice-runners", Items: api.VariableItems{
		"forgejo_registration_token": g.RegistrationToken(), "nomad_token": "",
	}}
	if _, _, err := n.API.Variables().Create(v, nil); err != nil {
		t.Fatalf("create the shims' Variable: %v", err)
	}
	args := []string{"job", "run", "-detach",
		"-var", "forgejo_url=" + g.URL, "-var", "runner_name=" + runner, "-var", "capacity=2",
		"-var", "nomad_addr=" + n.Addr}
	if !slices.ContainsFunc(vars, func(v string) bool { return strings.HasPrefix(v, "solstice_binary=") }) {
		args = append(args, "-var", "solstice_binary="+filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"))
	}
	if provider != "" {
		args = append(args, "-var", "service_provider="+provider)
	}
	for _, v := range vars {
		args = append(args, "-var", v)
	}
	if out, err := n.nomadCLI(append(args, "../jobspecs/runner-shims.nomad.hcl")...); err != nil {
		t.Fatalf("nomad job run runner-shims: %v\n%s", err, out)
	}
}

// shimHealth is the shim's registration as one service catalog shows it.
type shimHealth struct {
	tags   []string
	status string // passing, critical, or empty while no check has run
	output string
}

// registry reads the shim's registrations from one service provider: how
// many there are and, when one, its health.
type registry func() (shimHealth, int, error)

// consulRegistry reads the catalog and the check from Consul.
func consulRegistry(c *Consul, service string) registry {
	return func() (shimHealth, int, error) {
		svcs, err := c.Service(service)
		if err != nil || len(svcs) != 1 {
			return shimHealth{}, len(svcs), err
		}
		h := shimHealth{tags: svcs[0].ServiceTags}
		checks, err := c.Checks(service)
		if err == nil && len(checks) == 1 {
			h.status, h.output = checks[0].Status, checks[0].Output
		}
		return h, 1, err
	}
}

// nomadRegistry reads the catalog from Nomad and the check from the
// shim's allocation (Nomad runs the checks of its own services).
func nomadRegistry(n *Nomad, service string) registry {
	return func() (shimHealth, int, error) {
		regs, _, err := n.API.Services().Get(service, nil)
		if err != nil || len(regs) != 1 {
			return shimHealth{}, len(regs), err
		}
		h := shimHealth{tags: regs[0].Tags}
		checks, err := n.API.Allocations().Checks(regs[0].AllocID, nil)
		for _, c := range checks {
			h.output = c.Output
			h.status = map[string]string{"success": "passing", "failure": "critical"}[c.Status]
		}
		return h, 1, err
	}
}

// waitHealth waits for the shim's check to reach status with an output
// containing output, and returns the registration.
func waitHealth(t *testing.T, reg registry, limit time.Duration, status, output string) shimHealth {
	t.Helper()
	start := time.Now()
	var last shimHealth
	waitFor(t, limit, fmt.Sprintf("the shim's check to be %s", status), func() bool {
		h, n, err := reg()
		last = h
		return err == nil && n == 1 && h.status == status && strings.Contains(h.output, output)
	})
	t.Logf("the check was %s after %s: %s", status, time.Since(start).Round(time.Second), strings.TrimSpace(last.output))
	return last
}

// TestShimServiceHealth runs runner-shims.nomad.hcl with each service
// provider: Nomad against a real Consul agent, and Nomad's own catalog.
// The Forgejo and GitHub shims register with their tags and a passing
// /healthz check, which turns critical while their forge is down (and for
// Gitea passes again after); the services leave the catalog when the job
// stops.
func TestShimServiceHealth(t *testing.T) {
	alongside(t)
	tests := []struct {
		provider string
		start    func(t *testing.T) (*Nomad, func(service string) registry)
	}{
		{"consul", func(t *testing.T) (*Nomad, func(string) registry) {
			c := StartConsul(t)
			return StartNomad(t, WithRawExec(), WithConsul(c.Addr)), func(s string) registry { return consulRegistry(c, s) }
		}},
		{"nomad", func(t *testing.T) (*Nomad, func(string) registry) {
			n := StartNomad(t, WithRawExec())
			return n, func(s string) registry { return nomadRegistry(n, s) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			g := StartGitea(t)
			n, reg := tt.start(t)
			syncLabels(t, n)
			gh := registerGitHubRunner(t, n)
			runShims(t, g, n, "e2e-svc", tt.provider, "github_url="+gh.url)

			h := waitHealth(t, reg(forgejoService), 2*time.Minute, "passing", "ok")
			want := []string{"solstice", "forge=forgejo", "instance=" + g.URL, "runner=e2e-svc"}
			if !sameSet(h.tags, want) {
				t.Errorf("tags %q, want %q", h.tags, want)
			}
			h = waitHealth(t, reg(githubService), 2*time.Minute, "passing", "ok")
			if want := []string{"solstice", "forge=github", "instance=" + gh.url}; !sameSet(h.tags, want) {
				t.Errorf("GitHub shim tags %q, want %q", h.tags, want)
			}
			g.Stop()
			waitHealth(t, reg(forgejoService), 2*time.Minute, "critical", "forge unreachable")
			g.Restart()
			waitHealth(t, reg(forgejoService), 3*time.Minute, "passing", "ok")
			gh.fake.Close()
			waitHealth(t, reg(githubService), 2*time.Minute, "critical", "unhealthy")

			if out, err := n.nomadCLI("job", "stop", "-detach", "solstice-runners"); err != nil {
				t.Fatalf("nomad job stop: %v\n%s", err, out)
			}
			for _, svc := range []string{forgejoService, githubService} {
				waitFor(t, time.Minute, svc+" to be deregistered", func() bool {
					_, n, err := reg(svc)()
					return err == nil && n == 0
				})
			}
		})
	}
}

// registerGitHubRunner starts a fake GitHub and registers a runner with it
// whose credentials the shim finds in n's Variables.
func registerGitHubRunner(t *testing.T, n *Nomad) *ghEnv {
	t.Helper()
	e := newGitHubEnv(t, githubfake.Options{}, n)
	e.register(t, 1, protocol.DefaultRunnerVersion)
	return e
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
