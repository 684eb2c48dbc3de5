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
)

// shimService is the Forgejo shim's service name in runner-shims.nomad.hcl.
const shimService = "solstice-forgejo"

// runShims runs jobspecs/runner-shims.nomad.hcl with `nomad job run`, as an
// operator would, for Gitea g, with the registration token in the job's
// Variable. provider empty keeps the jobspec's default.
func runShims(t *testing.T, g *Gitea, n *Nomad, runner, provider string) {
	t.Helper()
	v := &api.Variable{Path: "nomad/jobs/solstice-runners", Items: api.VariableItems{
		"forgejo_registration_token": g.RegistrationToken(), "nomad_token": "",
	}}
	if _, _, err := n.API.Variables().Create(v, nil); err != nil {
		t.Fatalf("create the shims' Variable: %v", err)
	}
	args := []string{"job", "run", "-detach",
		"-var", "forgejo_url=" + g.URL, "-var", "runner_name=" + runner, "-var", "capacity=2",
		"-var", "solstice_binary=" + filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"),
		"-var", "nomad_addr=" + n.Addr}
	if provider != "" {
		args = append(args, "-var", "service_provider="+provider)
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
func consulRegistry(c *Consul) registry {
	return func() (shimHealth, int, error) {
		svcs, err := c.Service(shimService)
		if err != nil || len(svcs) != 1 {
			return shimHealth{}, len(svcs), err
		}
		h := shimHealth{tags: svcs[0].ServiceTags}
		checks, err := c.Checks(shimService)
		if err == nil && len(checks) == 1 {
			h.status, h.output = checks[0].Status, checks[0].Output
		}
		return h, 1, err
	}
}

// nomadRegistry reads the catalog from Nomad and the check from the
// shim's allocation (Nomad runs the checks of its own services).
func nomadRegistry(n *Nomad) registry {
	return func() (shimHealth, int, error) {
		regs, _, err := n.API.Services().Get(shimService, nil)
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
// The Forgejo shim registers with its tags and a passing /healthz check,
// which turns critical while Gitea is down and passes again after; the
// service leaves the catalog when the job stops.
func TestShimServiceHealth(t *testing.T) {
	tests := []struct {
		provider string
		start    func(t *testing.T) (*Nomad, registry)
	}{
		{"consul", func(t *testing.T) (*Nomad, registry) {
			c := StartConsul(t)
			return StartNomad(t, WithRawExec(), WithConsul(c.Addr)), consulRegistry(c)
		}},
		{"nomad", func(t *testing.T) (*Nomad, registry) {
			n := StartNomad(t, WithRawExec())
			return n, nomadRegistry(n)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			g := StartGitea(t)
			n, reg := tt.start(t)
			syncLabels(t, n)
			runShims(t, g, n, "e2e-svc", tt.provider)

			h := waitHealth(t, reg, 2*time.Minute, "passing", "ok")
			want := []string{"solstice", "forge=forgejo", "instance=" + g.URL, "runner=e2e-svc"}
			if !sameSet(h.tags, want) {
				t.Errorf("tags %q, want %q", h.tags, want)
			}
			g.Stop()
			waitHealth(t, reg, 2*time.Minute, "critical", "forge unreachable")
			g.Restart()
			waitHealth(t, reg, 3*time.Minute, "passing", "ok")

			if out, err := n.nomadCLI("job", "stop", "-detach", "solstice-runners"); err != nil {
				t.Fatalf("nomad job stop: %v\n%s", err, out)
			}
			waitFor(t, time.Minute, "the shim's service to be deregistered", func() bool {
				_, n, err := reg()
				return err == nil && n == 0
			})
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
