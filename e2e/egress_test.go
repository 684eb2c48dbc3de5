//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/driver/isolation"
)

// egressGID is the isolation group of these tests' clients. It is not the
// default, so their chain never fences the QEMUs of other tests running on
// this host at the same time.
const egressGID = 64990

// egressLab is what a guest tries to reach: test hosts standing for a
// public server, an operator's private network and the cloud metadata
// service, and a stand-in for Nomad's HTTP API on every host address.
type egressLab struct {
	public, private, metadata *TestHost
	hostAddr                  string // this host's LAN address
	apiPort                   int    // 4646 unless taken
	hits                      map[string]*atomic.Int32
}

func newEgressLab(t *testing.T) *egressLab {
	lab := &egressLab{
		public:   NewTestHost(t),
		private:  NewTestHostAt(t, fmt.Sprintf("10.203.%d.2", 100+os.Getpid()%100)),
		metadata: NewTestHostAt(t, "169.254.169.254"),
		hostAddr: lanAddress(t),
		hits:     map[string]*atomic.Int32{},
	}
	lab.serve(t, "public", lab.public.Listen(80))
	lab.serve(t, "private", lab.private.Listen(80))
	lab.serve(t, "private-8080", lab.private.Listen(8080))
	lab.serve(t, "metadata", lab.metadata.Listen(80))
	// Nomad's HTTP API listens on 0.0.0.0:4646 by default; the test
	// agent binds loopback only, so this stands in for it.
	l, err := net.Listen("tcp", "0.0.0.0:4646")
	if err != nil {
		t.Logf("port 4646 is taken (%v); the API stand-in gets another", err)
		if l, err = net.Listen("tcp", "0.0.0.0:0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { l.Close() })
	lab.apiPort = l.Addr().(*net.TCPAddr).Port
	lab.serve(t, "api", l)
	return lab
}

// privateNet is the private test host's /30, as an operator would
// allow-list it.
func (lab *egressLab) privateNet() string {
	return netip.PrefixFrom(netip.MustParseAddr(lab.private.IP), 30).Masked().String()
}

// serve answers every request with "hello from <name>" and counts them.
func (lab *egressLab) serve(t *testing.T, name string, l net.Listener) {
	n := &atomic.Int32{}
	lab.hits[name] = n
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "hello from %s", name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// lanAddress is the address this host's default route leaves from.
func lanAddress(t *testing.T) string {
	c, err := net.Dial("udp4", "203.0.113.1:9") // sends nothing
	if err != nil {
		t.Fatalf("this host has no default route: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// target is one destination a guest tries, by name.
type target struct{ name, url string }

func (lab *egressLab) targets(gateway string) []target {
	ts := []target{
		{"public", "http://" + lab.public.IP + "/"},
		{"private", "http://" + lab.private.IP + "/"},
		{"private-8080", "http://" + lab.private.IP + ":8080/"},
		{"metadata", "http://169.254.169.254/"},
		{"host-lan-api", fmt.Sprintf("http://%s:%d/", lab.hostAddr, lab.apiPort)},
		{"host-loopback-api", fmt.Sprintf("http://10.0.2.2:%d/", lab.apiPort)}, // QEMU's alias for the host's 127.0.0.1
	}
	if gateway != "" {
		ts = append(ts, target{"bridge-gateway-api", fmt.Sprintf("http://%s:%d/", gateway, lab.apiPort)})
	}
	return ts
}

var probeLine = regexp.MustCompile(`^(\S+) (OK|FAIL) ?(.*)$`)

// probe tries every target from inside the guest, and DNS through QEMU's
// resolver (10.0.2.3, forwarded to the host's), and returns each outcome:
// "OK <body>" or "FAIL <curl's error>".
func (n *Nomad) probe(alloc *api.Allocation, targets []target) map[string]string {
	n.t.Helper()
	var script strings.Builder
	script.WriteString(`try() { if out=$(curl -sS --max-time 8 "$2" 2>&1); then echo "$1 OK $out"; else echo "$1 FAIL $out"; fi; }` + "\n")
	for _, tg := range targets {
		fmt.Fprintf(&script, "try %s %s\n", tg.name, tg.url)
	}
	// Any answer, NXDOMAIN included (this lab has no internet), shows the
	// resolver was reached; a timeout shows it was not.
	script.WriteString(`out=$(busybox nslookup example.com 10.0.2.3 2>&1 | tr '\n' ' '); case "$out" in *"timed out"*|*"no servers"*) echo "dns FAIL $out";; *) echo "dns OK $out";; esac` + "\n")
	out, err := n.exec(alloc, script.String())
	if err != nil {
		n.t.Fatalf("probe from the guest: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if m := probeLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			got[m[1]] = m[2] + " " + m[3]
		}
	}
	return got
}

// expect checks the guest's outcomes: the names in open answered with
// their own greeting, every other target failed, and the servers behind
// the failed ones saw no request from the guest.
func (lab *egressLab) expect(t *testing.T, phase string, got map[string]string, targets []target, before map[string]int32, open ...string) {
	t.Helper()
	for _, tg := range append(targets, target{name: "dns"}) {
		res, wantOpen := got[tg.name], tg.name == "dns" || slices.Contains(open, tg.name)
		t.Logf("%s: guest -> %-18s %s: %s", phase, tg.name, tg.url, res)
		switch {
		case wantOpen && !strings.HasPrefix(res, "OK"):
			t.Errorf("%s: the guest could not reach %s (%s): %s", phase, tg.name, tg.url, res)
		case wantOpen && tg.name != "dns" && !strings.Contains(res, "hello from "+tg.name):
			t.Errorf("%s: %s answered %q, not its greeting", phase, tg.name, res)
		case !wantOpen && !strings.HasPrefix(res, "FAIL"):
			t.Errorf("%s: the guest reached %s (%s): %s", phase, tg.name, tg.url, res)
		}
	}
	for name, n := range lab.hits {
		if !slices.Contains(open, name) && n.Load() != before[name] {
			t.Errorf("%s: server %s answered %d requests from the guest", phase, name, n.Load()-before[name])
		}
	}
}

func (lab *egressLab) counts() map[string]int32 {
	out := map[string]int32{}
	for name, n := range lab.hits {
		out[name] = n.Load()
	}
	return out
}

// controls show that the named targets are up and routed: a process
// outside the fenced group reaches them from where QEMU runs (the host, or
// the allocation's namespace), so only the policy stops the guest.
func controls(t *testing.T, netns string, targets []target, names ...string) {
	t.Helper()
	for _, tg := range targets {
		if slices.Contains(names, tg.name) {
			control(t, netns, tg)
		}
	}
}

// control is one such check.
func control(t *testing.T, netns string, tg target) {
	t.Helper()
	argv := []string{"curl", "-sS", "--max-time", "8", tg.url}
	if netns != "" {
		argv = append([]string{"nsenter", "--net=" + netns, "--"}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "hello from ") {
		t.Fatalf("control: %s is not reachable from outside the group either (%v): %s", tg.url, err, out)
	}
	t.Logf("control: %s reaches %s: %s", map[bool]string{true: "the allocation's namespace", false: "the host"}[netns != ""], tg.name, out)
}

func egressPlugin(t *testing.T, allow ...string) string {
	return pluginConfig(t, pluginOpts{egressAllow: allow, extra: fmt.Sprintf("isolation_gid = %d", egressGID)})
}

// removeEgressChains takes this test's chains off the host when it ends:
// the plugin never removes them itself.
func removeEgressChains(t *testing.T) {
	t.Cleanup(func() {
		e := &isolation.Enforcer{Tables: isolation.Tables{IPv6: isolation.IPv6Enabled()}}
		e.Remove(context.Background(), egressGID)
	})
}

func bridgedJob(name string) string {
	return strings.Replace(vmJob(name, ""), `  group "g" {`, `  group "g" {
    network {
      mode = "bridge"
    }`, 1)
}

// TestEgressPolicyHostMode: a host-networked guest reaches a public server
// and DNS, and nothing of this host, the private network or the metadata
// service, until the operator allow-lists the private server's CIDR on
// its port. Deleting the chain by hand turns the driver unhealthy with the
// reason within a fingerprint interval, and the driver puts it back.
func TestEgressPolicyHostMode(t *testing.T) {
	lab := newEgressLab(t)
	removeEgressChains(t)
	n := StartNomad(t, WithPlugin(egressPlugin(t)))
	n.RunJob(vmJob("egress-host", ""))
	alloc := n.waitRunning("egress-host")
	targets := lab.targets("")
	controls(t, "", targets, "private", "private-8080", "metadata", "host-lan-api")
	chain := isolation.ChainName(egressGID)
	lab.measure(t, n, alloc, targets, "host firewall reload", "",
		"egress rules missing: chain "+chain+" not found in iptables (firewall reloaded?); reinstalled them")
}

// measure probes every target from the guest under the default policy,
// with the private test host allow-listed, and after the rules were
// deleted by hand (in netns, or the host's when empty), which must turn
// the driver unhealthy with reason before the rules come back.
func (lab *egressLab) measure(t *testing.T, n *Nomad, alloc *api.Allocation, targets []target, reload, netns, reason string) {
	t.Helper()
	before := lab.counts()
	lab.expect(t, "default policy", n.probe(alloc, targets), targets, before, "public")

	allowed := n.reconfigureEgress(lab.privateNet() + ":80")
	before = lab.counts()
	lab.expect(t, "private allow-listed ("+allowed+")", n.probe(alloc, targets), targets, before, "public", "private")

	n.expectUnhealthyAfter(reload, netns, reason)
	before = lab.counts()
	lab.expect(t, "after the repair", n.probe(alloc, targets), targets, before, "public", "private")
}

// TestEgressPolicyBridgeMode: the same from a guest whose QEMU runs in the
// allocation's network namespace, where this host's LAN address and the
// bridge's gateway are remote addresses.
func TestEgressPolicyBridgeMode(t *testing.T) {
	lab := newEgressLab(t)
	removeEgressChains(t)
	n := StartNomad(t, WithBridge(), WithPlugin(egressPlugin(t)))
	n.RunJob(bridgedJob("egress-bridge"))
	alloc := n.waitRunning("egress-bridge")
	netns := fmt.Sprintf("/proc/%d/ns/net", qemuPID(t, n.vmDir(alloc)))
	gateway := defaultGateway(t, netns)
	targets := lab.targets(gateway)
	controls(t, netns, targets, "private", "private-8080", "metadata", "host-lan-api", "bridge-gateway-api")
	chain := isolation.ChainName(egressGID)
	lab.measure(t, n, alloc, targets, "namespace firewall reload", netns,
		fmt.Sprintf("egress rules missing in the network namespace of task vm of alloc %.8s: chain %s not found in iptables (firewall reloaded?); reinstalled them", alloc.ID, chain))
}

// defaultGateway is the bridge's address as the allocation sees it.
func defaultGateway(t *testing.T, netns string) string {
	out, err := exec.Command("nsenter", "--net="+netns, "--", "ip", "-4", "route", "show", "default").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 || f[1] != "via" {
		t.Fatalf("the allocation's default route: %v: %s", err, out)
	}
	return f[2]
}

// reconfigureEgress adds an egress_allow entry to the client's plugin
// config and restarts the agent, as an operator would; the guest keeps
// running and the driver recovers it.
func (n *Nomad) reconfigureEgress(entry string) string {
	n.t.Helper()
	path := filepath.Join(n.DataDir(), "agent.hcl")
	data, err := os.ReadFile(path)
	if err != nil {
		n.t.Fatal(err)
	}
	old := fmt.Sprintf("egress_allow = [%q]", giteaNet)
	updated := fmt.Sprintf("egress_allow = [%q, %q]", giteaNet, entry)
	if !strings.Contains(string(data), old) {
		n.t.Fatalf("agent config has no %s:\n%s", old, data)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, updated, 1)), 0o644); err != nil {
		n.t.Fatal(err)
	}
	ctx := testContext(n.t, 3*time.Minute)
	if err := n.Restart(ctx, 30*time.Second); err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.WaitNode(ctx, "solstice-vm"); err != nil {
		n.t.Fatal(err)
	}
	return entry
}

// fingerprintInterval is the driver's (plugin.fingerprintPeriod).
const fingerprintInterval = 30 * time.Second

// expectUnhealthyAfter deletes the chain and its jump by hand, in netns or
// on the host, the way a firewall reload would, and checks that the driver
// reports itself unhealthy with want within one fingerprint interval (the
// client logs the change), that the servers see it a few seconds later
// (the client batches node updates for up to 10 s), and that it is healthy
// again, with the chain back, a fingerprint later.
func (n *Nomad) expectUnhealthyAfter(what, netns, want string) {
	n.t.Helper()
	chain := isolation.ChainName(egressGID)
	jump := isolation.Policy{GID: egressGID}.Jump()
	for _, args := range [][]string{append([]string{"-D", "OUTPUT"}, jump...), {"-F", chain}, {"-X", chain}} {
		if out, err := iptables(netns, args...); err != nil {
			n.t.Fatalf("%s: iptables %v: %v\n%s", what, args, err, out)
		}
	}
	deleted := time.Now()
	info := n.waitDriver(fingerprintInterval+15*time.Second, func(di *api.DriverInfo) bool { return !di.Healthy })
	seen := time.Since(deleted)
	reported := n.clientHealthChange(deleted, "unhealthy").Sub(deleted)
	n.t.Logf("%s: the driver reported unhealthy %s after the chain was deleted, the servers had it after %s: %q",
		what, reported.Round(100*time.Millisecond), seen.Round(100*time.Millisecond), info.HealthDescription)
	if reported > fingerprintInterval+time.Second {
		n.t.Errorf("%s: the driver took %s to report the deleted chain, more than one fingerprint interval", what, reported)
	}
	if info.HealthDescription != want {
		n.t.Errorf("%s: health description %q, want %q", what, info.HealthDescription, want)
	}
	info = n.waitDriver(fingerprintInterval+15*time.Second, func(di *api.DriverInfo) bool { return di.Healthy })
	n.t.Logf("%s: healthy again %s after the deletion: %q", what, time.Since(deleted).Round(100*time.Millisecond), info.HealthDescription)
	if out, err := iptables(netns, "-S", chain); err != nil || !strings.Contains(out, "REJECT") {
		n.t.Fatalf("%s: the chain was not put back: %v\n%s", what, err, out)
	}
}

// clientHealthChange finds when the Nomad client logged the solstice-vm
// driver's health turning to state after since.
func (n *Nomad) clientHealthChange(since time.Time, state string) time.Time {
	n.t.Helper()
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "driver health state has changed") || !strings.Contains(line, "driver=solstice-vm") ||
			!strings.Contains(line, "current="+state) {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", strings.Fields(line)[0])
		if err == nil && at.After(since) {
			return at
		}
	}
	n.t.Fatalf("the client log has no health change of solstice-vm to %s after %s", state, since.Format(time.RFC3339))
	return time.Time{}
}

// iptables runs iptables on the host, or in netns when it is set.
func iptables(netns string, args ...string) (string, error) {
	argv := append([]string{"iptables", "-w", "5"}, args...)
	if netns != "" {
		argv = append([]string{"nsenter", "--net=" + netns, "--"}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// waitDriver polls the node's solstice-vm driver info, as the servers see
// it, until done.
func (n *Nomad) waitDriver(limit time.Duration, done func(*api.DriverInfo) bool) *api.DriverInfo {
	n.t.Helper()
	deadline := time.Now().Add(limit)
	var last *api.DriverInfo
	for time.Now().Before(deadline) {
		nodes, _, err := n.API.Nodes().List(nil)
		if err == nil && len(nodes) > 0 {
			if node, _, err := n.API.Nodes().Info(nodes[0].ID, nil); err == nil && node.Drivers["solstice-vm"] != nil {
				last = node.Drivers["solstice-vm"]
				if done(last) {
					return last
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	n.t.Fatalf("driver state not reached within %s; last: %+v", limit, last)
	return nil
}
