package plugin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/isolation"
)

// scratchNetns stands in for the host's firewall: a network namespace of
// the test's own, so the host's rules are never touched.
func scratchNetns(t *testing.T, suffix string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	name := fmt.Sprintf("solstice-plg-%d-%s", os.Getpid(), suffix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

// TestFingerprintReportsTamperedEgressRules: the fingerprint after the
// chain disappears says so and the driver is unhealthy; the rules are back
// by then, so the next fingerprint is healthy.
func TestFingerprintReportsTamperedEgressRules(t *testing.T) {
	ns := scratchNetns(t, "host")
	const gid = 64997
	d := New(hclog.NewNullLogger())
	t.Cleanup(d.Shutdown)
	cfg := DefaultConfig()
	cfg.IsolationGID = gid
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d.configure(cfg, nil, nil)
	tables := isolation.Tables{Netns: ns, IPv6: isolation.IPv6Enabled()}
	d.egress = egressGuard{log: hclog.NewNullLogger(), enabled: true, gid: gid, tables: tables, host: &isolation.Enforcer{Tables: tables}}
	ctx := context.Background()

	fp := d.fingerprint(ctx) // installs: nothing was there yet, which is no drift
	if fp.Health != drivers.HealthStateHealthy {
		t.Fatalf("first fingerprint: %s: %s", fp.Health, fp.HealthDescription)
	}
	chain := isolation.ChainName(gid)
	for _, args := range [][]string{{"-F", "OUTPUT"}, {"-F", chain}, {"-X", chain}} {
		if out, err := exec.Command("nsenter", append([]string{"--net=" + ns, "--", "iptables"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v\n%s", args, err, out)
		}
	}
	fp = d.fingerprint(ctx)
	want := "egress rules missing: chain SOLSTICE-EGRESS-64997 not found in iptables (firewall reloaded?); reinstalled them"
	if fp.Health != drivers.HealthStateUnhealthy || fp.HealthDescription != want {
		t.Fatalf("after a reload: %s: %q, want unhealthy: %q", fp.Health, fp.HealthDescription, want)
	}
	fp = d.fingerprint(ctx)
	if fp.Health != drivers.HealthStateHealthy {
		t.Fatalf("after the repair: %s: %s", fp.Health, fp.HealthDescription)
	}
}

// TestEgressGuardChecksBridgedTasks: a bridged task's namespace gets the
// policy with the host's addresses listed, drift there names the task, and
// a namespace that went away is forgotten, not reported.
func TestEgressGuardChecksBridgedTasks(t *testing.T) {
	ns := scratchNetns(t, "alloc")
	const gid = 64996
	g := &egressGuard{log: hclog.NewNullLogger(), enabled: true, gid: gid,
		tables: isolation.Tables{IPv6: isolation.IPv6Enabled()}}
	g.host = &isolation.Enforcer{Tables: isolation.Tables{Netns: scratchNetns(t, "host")}}
	ctx := context.Background()
	task := &drivers.TaskConfig{ID: "a/build/1", Name: "build", AllocID: "0123456789abcdef"}
	if err := g.enterNetns(ctx, task, ns); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("nsenter", "--net="+ns, "--", "iptables", "-S", isolation.ChainName(gid)).Output()
	hostAddrs, _ := isolation.HostAddrs()
	for _, a := range hostAddrs {
		if a.Is4() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !strings.Contains(string(out), "-d "+a.String()+"/32 ") {
			t.Errorf("the host's address %s is not denied in the namespace", a)
		}
	}
	if !strings.Contains(string(out), "-o lo") {
		t.Fatalf("namespace chain:\n%s", out)
	}
	if err := g.check(ctx); err != nil {
		t.Fatalf("check = %v", err)
	}
	exec.Command("nsenter", "--net="+ns, "--", "iptables", "-D", "OUTPUT", "1").Run()
	err := g.check(ctx)
	want := "egress rules missing in the network namespace of task build of alloc 01234567: the iptables rule sending group 64996 to chain SOLSTICE-EGRESS-64996 is gone from OUTPUT; reinstalled them"
	if err == nil || err.Error() != want {
		t.Fatalf("check = %v\nwant %s", err, want)
	}
	exec.Command("ip", "netns", "del", strings.TrimPrefix(ns, "/var/run/netns/")).Run()
	if err := g.check(ctx); err != nil || len(g.tasks) != 0 {
		t.Fatalf("after the namespace went: check = %v, %d tasks watched", err, len(g.tasks))
	}
}
