//go:build e2e

package e2e

import (
	"encoding/json"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"golang.org/x/crypto/ssh"

	"github.com/solstice-ci/solstice/internal/contract"
)

// warmManifest is the part of a template's manifest.json the tests read.
type warmManifest struct {
	HostKey []byte `json:"host_key"`
}

// waitTemplate waits for the first complete template under dir and
// returns its directory.
func waitTemplate(t testing.TB, dir string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(dir, "*", "manifest.json"))
		if len(m) > 0 {
			return filepath.Dir(m[0])
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no template was saved under %s within %s", dir, limit)
	return ""
}

// primeTemplate runs one cold task, which starts the template build, stops
// it, and waits for the template.
func primeTemplate(t testing.TB, n *Nomad, tplDir string) string {
	t.Helper()
	n.RunJob(vmJob("warm-prime", ""))
	alloc := n.waitRunning("warm-prime")
	if msg := taskEventText(alloc); !strings.Contains(msg, "no template yet") {
		t.Fatalf("the first task's events do not say why it booted cold: %q", msg)
	}
	if _, _, err := n.API.Jobs().Deregister("warm-prime", true, nil); err != nil {
		t.Fatal(err)
	}
	return waitTemplate(t, tplDir, 10*time.Minute)
}

// primeWarm dispatches one job through the test label, which boots cold
// and starts the template's build for the label's resources, and waits for
// the job and the template: the jobs after it start warm.
func primeWarm(t *testing.T, n *Nomad, tplDir string) {
	t.Helper()
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "prime", Name: "prime"},
		Steps: []contract.Step{{Name: "Prime", Run: "true"}}}
	_, job := dispatchPlan(t, n, p, nil)
	if _, evs := n.waitJobDone(t, job.ID, 5*time.Minute); jobConclusion(evs) != "success" {
		dumpEvents(t, evs)
		t.Fatal("the priming job failed")
	}
	waitTemplate(t, tplDir, 10*time.Minute)
}

// taskEventText is the task events' messages with their details (the
// driver's events carry their specifics there).
func taskEventText(a *api.Allocation) string {
	var parts []string
	for _, st := range a.TaskStates {
		for _, e := range st.Events {
			parts = append(parts, e.DisplayMessage)
			for _, k := range slices.Sorted(maps.Keys(e.Details)) {
				parts = append(parts, k+"="+e.Details[k])
			}
		}
	}
	return strings.Join(parts, " | ")
}

// identityProbe prints what tells two guests apart, one item a line.
const identityProbe = `cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2
cat /etc/machine-id
hostname
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo
date +%s
sudo -n ls -A /run/solstice`

type guestIdentity struct {
	hostKey, machineID, hostname, random string
	clock                                int64
	skew                                 time.Duration
	runFiles                             string
}

func probeIdentity(t *testing.T, n *Nomad, alloc *api.Allocation) guestIdentity {
	t.Helper()
	out, err := n.exec(alloc, identityProbe)
	after := time.Now()
	if err != nil {
		t.Fatalf("probe %s: %v\n%s", alloc.JobID, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("probe %s printed %q", alloc.JobID, out)
	}
	clock, err := strconv.ParseInt(strings.TrimSpace(lines[4]), 10, 64)
	if err != nil {
		t.Fatalf("probe %s: date printed %q", alloc.JobID, lines[4])
	}
	skew := after.Sub(time.Unix(clock, 0))
	return guestIdentity{hostKey: lines[0], machineID: lines[1], hostname: lines[2], random: lines[3],
		clock: clock, skew: skew, runFiles: strings.Join(lines[5:], " ")}
}

// TestWarmStartsGiveClonesTheirOwnIdentity: after one cold task has made
// the image's template, two concurrent tasks start as its clones. They
// share no identity with each other or with the template (host key,
// machine id, hostname, random stream), their clocks are the host's, a file
// one writes is not in the other, the template's seed is gone from both,
// and the template's login key opens neither.
func TestWarmStartsGiveClonesTheirOwnIdentity(t *testing.T) {
	alongside(t)
	tplDir := t.TempDir()
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{templateDir: tplDir})))
	tpl := primeTemplate(t, n, tplDir)
	n.waitNoRunningAllocs(2 * time.Minute)

	n.RunJob(vmJob("warm-a", ""))
	n.RunJob(vmJob("warm-b", ""))
	a, b := n.waitRunning("warm-a"), n.waitRunning("warm-b")
	for _, x := range []*api.Allocation{a, b} {
		if msg := taskEventText(x); !strings.Contains(msg, "restored from template") {
			t.Fatalf("%s did not start warm: %q", x.JobID, msg)
		}
	}
	ia, ib := probeIdentity(t, n, a), probeIdentity(t, n, b)
	t.Logf("clone a: %+v", ia)
	t.Logf("clone b: %+v", ib)
	tplKey := templateHostKey(t, tpl)
	for _, c := range []struct {
		what, a, b string
	}{
		{"host key", ia.hostKey, ib.hostKey},
		{"machine id", ia.machineID, ib.machineID},
		{"hostname", ia.hostname, ib.hostname},
		{"random stream", ia.random, ib.random},
	} {
		if c.a == c.b || c.a == "" {
			t.Errorf("both clones have the same %s %q", c.what, c.a)
		}
	}
	for _, id := range []guestIdentity{ia, ib} {
		if id.hostKey == tplKey {
			t.Errorf("a clone kept the template's host key %s", tplKey)
		}
		if id.hostname == "solstice-template" {
			t.Errorf("a clone kept the template's hostname")
		}
		if id.skew < -2*time.Second || id.skew > 10*time.Second {
			t.Errorf("a clone's clock is %s off the host's", id.skew)
		}
		if strings.Contains(id.runFiles, "user-data") {
			t.Errorf("a clone still has the template's seed: /run/solstice holds %s", id.runFiles)
		}
	}

	if out, err := n.exec(a, "echo a > /home/solstice/marker-a && sync"); err != nil {
		t.Fatalf("write marker in a: %v\n%s", err, out)
	}
	out, err := n.exec(b, "ls -a /home/solstice /tmp")
	if err != nil || strings.Contains(out, "marker-a") {
		t.Fatalf("clone b sees clone a's file (or ls failed: %v):\n%s", err, out)
	}

	loginKey, err := os.ReadFile(filepath.Join(tpl, "login.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*api.Allocation{a, b} {
		assertKeyRefused(t, sshAddr(t, x), loginKey)
	}
	warmJobRuns(t, n)
}

// warmJobRuns runs a job's plan in a clone: its agent is in place already,
// copied from the agent disk when the template was built, and it takes the
// job on the agent port, with no SSH session.
func warmJobRuns(t *testing.T, n *Nomad) {
	t.Helper()
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "warm-plan", Name: "warm-plan"},
		Steps: []contract.Step{{Name: "Hello", Run: "echo hello from $(hostname)"}}}
	// The template was made for vmJob's 512 MiB; planJob asks for more.
	n.RunJob(strings.Replace(planJob(t, "warm-plan", "solstice-test", p), "memory = 1024", "memory = 512", 1))
	alloc, evs := n.waitJobDone(t, "warm-plan", 5*time.Minute)
	if msg := taskEventText(alloc); !strings.Contains(msg, "restored from template") || !strings.Contains(msg, "in the guest already: its template copied it from the read-only agent disk, and it took the job on the agent port") {
		t.Errorf("the job did not start warm, on the agent port, with the agent its template put in place: %q", msg)
	}
	if c := jobConclusion(evs); c != "success" {
		dumpEvents(t, evs)
		t.Fatalf("warm job conclusion %q, want success\n%s", c, tail(n.Logs(alloc, contract.TaskName, "stdout"), 40))
	}
	// The clone's hostname is its own task's (task name and alloc), not
	// the template's.
	if got, want := strings.Join(stepLines(evs, "Hello"), "\n"), "hello from job-"+alloc.ID[:8]; got != want {
		t.Errorf("the warm job's step printed %q, want %q", got, want)
	}
}

// templateHostKey is the template's host key as ssh_host_ed25519_key.pub
// starts: type and base64.
func templateHostKey(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m warmManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.ParsePublicKey(m.HostKey)
	if err != nil {
		t.Fatalf("template host key: %v", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

var sshOnRe = regexp.MustCompile(`ssh on ([0-9.]+:[0-9]+)`)

// sshAddr is where the task's guest sshd is forwarded, from its Booting
// event.
func sshAddr(t *testing.T, alloc *api.Allocation) string {
	t.Helper()
	m := sshOnRe.FindStringSubmatch(taskEventText(alloc))
	if m == nil {
		t.Fatalf("no ssh address in the events of %s: %q", alloc.JobID, taskEventText(alloc))
	}
	return m[1]
}

// assertKeyRefused logs in with key, whatever the host key, and insists on
// an authentication failure.
func assertKeyRefused(t *testing.T, addr string, key []byte) {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	cfg := &ssh.ClientConfig{User: "solstice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	c, _, _, err := ssh.NewClientConn(conn, addr, cfg)
	if err == nil {
		c.Close()
		t.Fatalf("the template's login key opened the clone at %s", addr)
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("login with the template's key at %s: %v (want an authentication failure)", addr, err)
	}
	t.Logf("the template's key is refused at %s: %v", addr, err)
}
