package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/isolation"
)

// egressGuard keeps the guests' egress policy (package isolation) in
// place: in the host's firewall for host-networked tasks, and in the
// network namespace of every bridged task. The zero value enforces
// nothing, as with host_isolation = false.
//
// Every fingerprint reads the rules back (check). Rules that are missing
// or differ from what the guard installed are reported — that fingerprint
// says the driver is unhealthy, with the reason — and reinstalled at once,
// so the next fingerprint is healthy again if they stay. Reporting first
// makes a firewall reload visible (Nomad records the health change as a
// node event) and repairing at once keeps the window in which guests are
// unfenced to at most one fingerprint interval.
type egressGuard struct {
	mu      sync.Mutex
	log     hclog.Logger
	enabled bool
	gid     int
	allow   []isolation.Allow
	tables  isolation.Tables
	host    *isolation.Enforcer
	tasks   map[string]*taskEgress // bridged tasks, by task id
}

// taskEgress is the policy in one bridged task's network namespace.
type taskEgress struct {
	name string // "task build of alloc 01234567", for messages
	*isolation.Enforcer
}

// configure takes the settings of a new plugin config and installs the
// host's chain; a failure is logged here and reported by every
// fingerprint until an install succeeds.
func (g *egressGuard) configure(ctx context.Context, log hclog.Logger, cfg *Config) {
	g.mu.Lock()
	g.log, g.enabled = log, cfg.HostIsolation
	g.gid, g.allow = cfg.IsolationGID, cfg.egressAllow
	g.tables = isolation.Tables{IPTables: cfg.IPTablesBinary, IP6Tables: cfg.IP6TablesBinary, IPv6: isolation.IPv6Enabled()}
	g.host = &isolation.Enforcer{Tables: g.tables}
	g.mu.Unlock()
	if !cfg.HostIsolation {
		log.Warn("host_isolation = false: guests can reach this host, the cluster and private networks")
		return
	}
	if err := g.installHost(ctx); err != nil {
		log.Error("cannot enforce the guests' egress policy", "error", err)
	}
}

func (g *egressGuard) installHost(ctx context.Context) error {
	p, err := g.policy(false)
	if err == nil {
		err = g.host.Install(ctx, p)
	}
	return err
}

// policy is the policy as of now: resolv.conf and the host's addresses can
// change while the driver runs. In a namespace of its own (bridged) the
// host's addresses are listed, since traffic to them no longer leaves
// through "lo".
func (g *egressGuard) policy(bridged bool) (isolation.Policy, error) {
	g.mu.Lock()
	p := isolation.Policy{GID: g.gid, Allow: g.allow}
	g.mu.Unlock()
	// Without a resolv.conf QEMU forwards DNS nowhere, so none is allowed.
	p.Resolvers, _ = isolation.Resolvers(isolation.ResolvConf)
	if bridged {
		addrs, err := isolation.HostAddrs()
		if err != nil {
			return p, err
		}
		p.HostAddrs = addrs
	}
	return p, nil
}

// enterNetns installs the policy in a bridged task's namespace before its
// QEMU starts there (or again when the task is recovered). The namespace
// is checked at every fingerprint from then on, even when this first
// install fails: then each fingerprint retries it and reports why.
func (g *egressGuard) enterNetns(ctx context.Context, cfg *drivers.TaskConfig, netns string) error {
	g.mu.Lock()
	if !g.enabled {
		g.mu.Unlock()
		return nil
	}
	tables := g.tables
	tables.Netns = netns
	te := &taskEgress{name: fmt.Sprintf("task %s of alloc %.8s", cfg.Name, cfg.AllocID), Enforcer: &isolation.Enforcer{Tables: tables}}
	if g.tasks == nil {
		g.tasks = map[string]*taskEgress{}
	}
	g.tasks[cfg.ID] = te
	g.mu.Unlock()
	p, err := g.policy(true)
	if err == nil {
		err = te.Install(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("cannot enforce the egress policy in the allocation's network namespace: %w", err)
	}
	return nil
}

// forget stops checking a task's namespace (the task is gone).
func (g *egressGuard) forget(taskID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tasks, taskID)
}

// check verifies and repairs every chain the guard is responsible for and
// returns why the driver is unhealthy, or nil.
func (g *egressGuard) check(ctx context.Context) error {
	g.mu.Lock()
	enabled, host, log := g.enabled, g.host, g.log
	tasks := make(map[string]*taskEgress, len(g.tasks))
	for id, te := range g.tasks {
		tasks[id] = te
	}
	g.mu.Unlock()
	if !enabled {
		return nil
	}
	var problems []error
	p, err := g.policy(false)
	if err == nil {
		err = g.sync(ctx, host, p, "", log)
	}
	problems = append(problems, err)
	for id, te := range tasks {
		problems = append(problems, g.checkTask(ctx, id, te, log))
	}
	return errors.Join(problems...)
}

func (g *egressGuard) checkTask(ctx context.Context, id string, te *taskEgress, log hclog.Logger) error {
	if _, err := os.Stat(te.Tables.Netns); err != nil {
		g.forget(id) // the allocation's namespace is gone, and its QEMU with it
		return nil
	}
	p, err := g.policy(true)
	if err == nil {
		err = g.sync(ctx, te.Enforcer, p, " in the network namespace of "+te.name, log)
	}
	if _, statErr := os.Stat(te.Tables.Netns); statErr != nil {
		g.forget(id) // torn down while we looked
		return nil
	}
	return err
}

// sync repairs one enforcer's rules and describes what was wrong.
func (g *egressGuard) sync(ctx context.Context, e *isolation.Enforcer, p isolation.Policy, where string, log hclog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, egressTimeout)
	defer cancel()
	drift, err := e.Sync(ctx, p)
	if drift == nil && err == nil {
		return nil
	}
	if drift == nil {
		return fmt.Errorf("cannot enforce the guests' egress policy%s (install iptables, or set host_isolation = false to accept the risk): %s", where, oneLine(err))
	}
	what := "unverifiable" // the rules could not even be read
	var d *isolation.Drift
	if errors.As(drift, &d) {
		what = map[bool]string{true: "missing", false: "altered"}[d.Missing]
	}
	msg := fmt.Sprintf("egress rules %s%s: %s", what, where, oneLine(drift))
	if err != nil {
		msg += "; reinstalling them failed: " + oneLine(err)
	} else {
		msg += "; reinstalled them"
	}
	log.Error("guests' egress rules were not as installed", "problem", msg)
	return errors.New(msg)
}

// egressTimeout bounds one check or install, whatever holds the xtables
// lock.
const egressTimeout = 30 * time.Second

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
