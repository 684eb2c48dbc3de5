//go:build e2e

// Package e2e holds the end-to-end tests: a real Nomad 1.6.3 agent, the real
// solstice-vm plugin, real QEMU and the test guest image. They run under
// `make test` (build tag e2e), which builds everything they need first.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/nomadagent"
)

// env reads a path the Makefile exports; a missing one is a setup error, not
// a reason to skip.
func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the e2e tests through `make test`", name)
	}
	if _, err := os.Stat(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// Nomad is a running agent owned by one test.
type Nomad struct {
	*nomadagent.Agent
	API *api.Client
	t   testing.TB
}

type nomadOptions struct {
	pluginConfig string
	pluginBinary string
	rawExec      bool
	bridge       bool
	consul       string
	acl          bool
}

// Option changes how StartNomad configures the agent.
type Option func(*nomadOptions)

// WithRawExec enables the raw_exec driver.
func WithRawExec() Option { return func(o *nomadOptions) { o.rawExec = true } }

// WithBridge enables bridge networking for task groups (CNI).
func WithBridge() Option { return func(o *nomadOptions) { o.bridge = true } }

// WithConsul points the agent at a Consul agent's HTTP address
// (host:port), as StartConsul returns it.
func WithConsul(addr string) Option { return func(o *nomadOptions) { o.consul = addr } }

// WithACL enables Nomad's ACLs and bootstraps them: API and nomadCLI use
// the management token (Nomad.Token); see acl_harness_test.go.
func WithACL() Option { return func(o *nomadOptions) { o.acl = true } }

// WithPlugin loads bin/solstice-vm with the given plugin config body.
func WithPlugin(config string) Option { return func(o *nomadOptions) { o.pluginConfig = config } }

// WithPluginBinary loads this solstice-vm binary instead of bin/'s.
func WithPluginBinary(path string) Option { return func(o *nomadOptions) { o.pluginBinary = path } }

// StartNomad starts an agent for t and stops it, by PID, when t ends,
// whether t passed or not. The agent's log is printed when t failed.
func StartNomad(t testing.TB, opts ...Option) *Nomad {
	t.Helper()
	var o nomadOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := nomadagent.Config{
		Binary:       env(t, "SOLSTICE_NOMAD"),
		DataDir:      filepath.Join(t.TempDir(), "nomad"),
		PluginConfig: o.pluginConfig,
		RawExec:      o.rawExec,
		Consul:       o.consul,
		ACL:          o.acl,
	}
	if o.bridge {
		cfg.CNIPath = "/usr/lib/cni"
	}
	if o.pluginConfig != "" {
		cfg.Plugin = filepath.Join(env(t, "SOLSTICE_BIN"), "solstice-vm")
		if o.pluginBinary != "" {
			cfg.Plugin = o.pluginBinary
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	agent, err := nomadagent.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start nomad: %v", err)
	}
	n := &Nomad{Agent: agent, t: t}
	t.Cleanup(n.cleanup)
	if o.acl {
		bootstrapACL(t, ctx, agent)
	}
	if n.API, err = agent.Client(); err != nil {
		t.Fatal(err)
	}
	// Wait for the driver the test relies on: raw_exec when enabled (a test
	// may load solstice-vm precisely to see it unhealthy), else solstice-vm.
	driver := "raw_exec"
	if o.pluginConfig != "" && !o.rawExec {
		driver = "solstice-vm"
	}
	if _, err := agent.WaitNode(ctx, driver); err != nil {
		t.Fatalf("nomad node: %v", err)
	}
	t.Logf("nomad agent pid %d at %s", agent.PID(), agent.Addr)
	return n
}

// cleanup purges every job (so the driver stops its VMs) and stops the agent.
func (n *Nomad) cleanup() {
	if jobs, _, err := n.API.Jobs().List(nil); err == nil {
		for _, j := range jobs {
			n.API.Jobs().Deregister(j.ID, true, nil)
		}
		n.waitNoRunningAllocs(30 * time.Second)
	}
	if err := n.Stop(30 * time.Second); err != nil {
		n.t.Logf("stop nomad: %v", err)
	}
	if err := n.Unmount(); err != nil {
		n.t.Logf("unmount task dirs: %v", err)
	}
	if n.t.Failed() {
		if data, err := os.ReadFile(n.LogPath); err == nil {
			n.t.Logf("nomad agent log (without http requests):\n%s", tail(withoutHTTP(string(data)), 150))
		}
	}
}

func (n *Nomad) waitNoRunningAllocs(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		allocs, _, err := n.API.Allocations().List(nil)
		if err != nil {
			return
		}
		running := 0
		for _, a := range allocs {
			if a.ClientStatus == api.AllocClientStatusRunning || a.ClientStatus == api.AllocClientStatusPending {
				running++
			}
		}
		if running == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// RunJob parses a jobspec through the agent and registers it.
func (n *Nomad) RunJob(hcl string) *api.Job {
	n.t.Helper()
	job, err := n.API.Jobs().ParseHCL(hcl, true)
	if err != nil {
		n.t.Fatalf("parse jobspec: %v", err)
	}
	if _, _, err := n.API.Jobs().Register(job, nil); err != nil {
		n.t.Fatalf("register job %s: %v", *job.ID, err)
	}
	return job
}

// WaitAlloc waits for the job's first allocation to satisfy done and
// returns it.
func (n *Nomad) WaitAlloc(jobID string, limit time.Duration, what string, done func(*api.Allocation) bool) *api.Allocation {
	n.t.Helper()
	deadline := time.Now().Add(limit)
	var last *api.Allocation
	for time.Now().Before(deadline) {
		stubs, _, err := n.API.Jobs().Allocations(jobID, true, nil)
		if err == nil && len(stubs) > 0 {
			a, _, err := n.API.Allocations().Info(stubs[0].ID, nil)
			if err == nil {
				last = a
				if done(a) {
					return a
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.t.Fatalf("job %s: no allocation %s within %s; last: %s", jobID, what, limit, describe(last))
	return nil
}

// WaitComplete waits for the job's allocation to finish, whatever the result.
func (n *Nomad) WaitComplete(jobID string, limit time.Duration) *api.Allocation {
	return n.WaitAlloc(jobID, limit, "finished", func(a *api.Allocation) bool {
		return a.ClientStatus == api.AllocClientStatusComplete || a.ClientStatus == api.AllocClientStatusFailed
	})
}

// Logs returns a task's whole stdout or stderr as `nomad alloc logs` would.
func (n *Nomad) Logs(alloc *api.Allocation, task, stream string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	frames, errs := n.API.AllocFS().Logs(alloc, false, task, stream, "start", 0, ctx.Done(), nil)
	var b strings.Builder
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return b.String()
			}
			b.Write(f.Data)
		case err := <-errs:
			if err != nil {
				n.t.Fatalf("read %s logs of %s: %v", stream, task, err)
			}
		case <-ctx.Done():
			return b.String()
		}
	}
}

func describe(a *api.Allocation) string {
	if a == nil {
		return "none"
	}
	s := fmt.Sprintf("alloc %s status %s", a.ID[:8], a.ClientStatus)
	for task, st := range a.TaskStates {
		s += fmt.Sprintf("; task %s %s", task, st.State)
		for _, e := range st.Events {
			s += fmt.Sprintf(" [%s: %s]", e.Type, e.DisplayMessage)
		}
	}
	return s
}

// withoutHTTP drops the agent's per-request debug lines, which drown the
// lines that explain a failure.
func withoutHTTP(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "http: request complete") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func testContext(t testing.TB, limit time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs through t.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: testWriter{t}, Level: hclog.Info})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// alongside lets a long test that mostly waits (on boots under TCG, on
// Nomad's evaluations, on a forge's polls) run beside another such test
// once the serial tests are done: go test runs two at a time on a 2-core
// machine, which keeps the suite inside its CI budget. Such a test owns
// all it uses (agents, forges and test hosts on addresses it reserves,
// ports picked free, the default isolation_gid only with the default
// egress policy) and never looks at processes it did not start, except to
// bound their memory.
func alongside(t *testing.T) {
	t.Parallel()
}
