//go:build e2e

package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"golang.org/x/crypto/ssh"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/shim/github"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// debugHost is what the test client's operator tells users to connect to.
const debugHost = "debug.example.test"

// debugTTL is the test-shortened session limit (debug_ssh_max).
const debugTTL = 90 * time.Second

const debugWorkflow = `name: debug
on: push
jobs:
  fail:
    runs-on: solstice-test
    strategy:
      matrix:
        leg: [one, two]
    steps:
      - uses: actions/checkout@v4
      - run: |
          echo "left by ${{ matrix.leg }}" > left-behind.txt
          exit 1
`

const expiryWorkflow = `name: expiry
on: push
jobs:
  alone:
    runs-on: solstice-test
    steps:
      - run: exit 1
`

var connectRe = regexp.MustCompile(`ssh -p (\d+) solstice@` + regexp.QuoteMeta(debugHost))

// TestGiteaDebugSSH: a repository with SOLSTICE_DEBUG_SSH=true gets a
// session into a failed job's VM with the pushing user's Gitea keys; a
// stranger's key is refused; the concurrent second failure gets none and
// says why; logging out ends the VM and the forge shows failure; a session
// nobody uses ends at its expiry.
func TestGiteaDebugSSH(t *testing.T) {
	start := time.Now()
	extra := fmt.Sprintf("debug_ssh_host = %q\n    debug_ssh_max = %q\n", debugHost, debugTTL.String())
	f := &forgeVM{g: StartGitea(t), n: StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: extra}))), repo: "debugged"}
	syncLabels(t, f.n)
	f.shim = startShim(t, f.g, f.n, "e2e-vm")
	f.shim.waitRegistered(t)
	f.g.CreateRepo(f.repo)
	userKey, userSigner := newTestKey(t)
	_, strangerSigner := newTestKey(t)
	f.g.API("POST", "user/keys", map[string]any{"title": "laptop", "key": userKey}, 201, nil)
	f.g.API("POST", fmt.Sprintf("repos/%s/%s/actions/variables/SOLSTICE_DEBUG_SSH", f.g.User, f.repo), map[string]any{"value": "true"}, 201, nil)

	f.g.PushFile(f.repo, ".gitea/workflows/debug.yml", debugWorkflow)
	holder, refused, port := f.waitDebugOutcome(t, 2, 15*time.Minute)
	t.Logf("session in %q on port %d; refused in %q (after %s)", holder.Name, port, refused.Name, time.Since(start).Round(time.Second))
	addr := f.debugAddr(t, port)

	if _, err := dialDebug(addr, strangerSigner); err == nil {
		t.Fatal("a key that is not the user's logged in")
	}
	c, err := dialDebug(addr, userSigner)
	if err != nil {
		t.Fatalf("the user's key: %v", err)
	}
	out := runDebug(t, c, "pwd; cat left-behind.txt; ls")
	if !strings.Contains(out, "/work/") || !strings.Contains(out, "left by") || !strings.Contains(out, "README.md") {
		t.Fatalf("the session is not in the job's workspace:\n%s", out)
	}
	c.Close() // log out
	loggedOut := time.Now()
	jobs := f.g.WaitJobsDone(f.repo, 2, 2*time.Minute)
	gone := time.Since(loggedOut)
	t.Logf("forge finished %s after the logout", gone.Round(time.Second))
	if gone > time.Minute {
		t.Errorf("the job finished %s after the logout, want within a minute", gone)
	}
	for _, j := range jobs {
		if j.Conclusion != "failure" {
			t.Errorf("%s: %s, want failure", j.Name, j.Conclusion)
		}
	}
	if log := f.g.JobLog(f.repo, holder.ID); !strings.Contains(log, "Debug session ended: the user logged out.") {
		t.Errorf("%s: the log does not say the session ended at the logout:\n%s", holder.Name, log)
	}
	if _, err := dialDebug(addr, userSigner); err == nil {
		t.Error("the debug port still answers after the session ended")
	}

	// The workflow file is replaced, so this push runs only the new job.
	f.g.UpdateFile(f.repo, ".gitea/workflows/debug.yml", expiryWorkflow)
	expiring := f.waitConnectLine(t, "alone", 10*time.Minute)
	opened := time.Now()
	done := f.waitJob(t, expiring.Name, debugTTL+2*time.Minute)
	lasted := time.Since(opened)
	t.Logf("an unused session lasted %s (limit %s)", lasted.Round(time.Second), debugTTL)
	if done.Conclusion != "failure" {
		t.Errorf("%s: %s, want failure", done.Name, done.Conclusion)
	}
	if log := f.g.JobLog(f.repo, done.ID); !strings.Contains(log, "Debug session ended: the session expired.") {
		t.Errorf("%s: the log does not say the session expired:\n%s", done.Name, log)
	}
	f.assertCleanedUp(t)
	t.Logf("TestGiteaDebugSSH took %s", time.Since(start).Round(time.Second))
}

// waitDebugOutcome waits until one of n running jobs shows a connection
// line and every other one says it gets no session.
func (f *forgeVM) waitDebugOutcome(t *testing.T, n int, limit time.Duration) (holder, refused GiteaJob, port int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		holder, refused, port = GiteaJob{}, GiteaJob{}, 0
		jobs := f.g.Jobs(f.repo)
		for _, j := range jobs {
			log := f.logSoFar(j.ID)
			if m := connectRe.FindStringSubmatch(log); m != nil {
				holder = j
				port, _ = strconv.Atoi(m[1])
			}
			if strings.Contains(log, "No debug session: job ") && strings.Contains(log, "holds this repository's debug session") {
				refused = j
			}
		}
		if len(jobs) == n && holder.ID != 0 && refused.ID != 0 {
			return holder, refused, port
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no session and refusal within %s: %+v", limit, f.g.Jobs(f.repo))
	return
}

// logSoFar is a job's log, "" while the job has not started.
func (f *forgeVM) logSoFar(job int64) string {
	var s string
	if err := f.g.api("GET", fmt.Sprintf("repos/%s/%s/actions/jobs/%d/logs", f.g.User, f.repo, job), nil, 200, &s); err != nil {
		return ""
	}
	return s
}

// waitConnectLine waits for a job's connection line.
func (f *forgeVM) waitConnectLine(t *testing.T, name string, limit time.Duration) GiteaJob {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, j := range f.g.Jobs(f.repo) {
			if j.Name == name && connectRe.MatchString(f.logSoFar(j.ID)) {
				return j
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no connection line in %q within %s", name, limit)
	return GiteaJob{}
}

// waitJob waits for a job to complete.
func (f *forgeVM) waitJob(t *testing.T, name string, limit time.Duration) GiteaJob {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, j := range f.g.Jobs(f.repo) {
			if j.Name == name && j.Status == "completed" {
				return j
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%q not completed within %s", name, limit)
	return GiteaJob{}
}

// debugAddr is where debugHost would resolve to: the Nomad port's host
// address in the allocation that holds port.
func (f *forgeVM) debugAddr(t *testing.T, port int) string {
	t.Helper()
	stubs, _, err := f.n.API.Allocations().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, stub := range stubs {
		a, _, err := f.n.API.Allocations().Info(stub.ID, nil)
		if err != nil || a.AllocatedResources == nil {
			continue
		}
		for _, p := range a.AllocatedResources.Shared.Ports {
			if p.Label == "debug" && p.Value == port {
				return allocDebugAddr(t, a, port)
			}
		}
	}
	t.Fatalf("no allocation has debug port %d", port)
	return ""
}

func newTestKey(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " e2e", signer
}

// dialDebug logs in as a user would. The host key is not checked: the
// test stands for a user who accepts it on first use.
func dialDebug(addr string, signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: "solstice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
}

func runDebug(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// TestGitHubDebugSSH: a job re-run with debug logging on the fake GitHub
// fails; its VM takes the triggering user's keys from the fake's
// /{user}.keys, the connection line is in nomad alloc logs and, with how
// the session ended, in the job's last step; a stranger's key is refused;
// the user logs in, sees the workspace and logs out; GitHub gets failure.
func TestGitHubDebugSSH(t *testing.T) {
	start := time.Now()
	extra := fmt.Sprintf("debug_ssh_host = %q\n    debug_ssh_max = %q\n", debugHost, debugTTL.String())
	e := startGitHubEnvWith(t, githubfake.Options{}, pluginOpts{extra: extra})
	e.register(t, 1, protocol.DefaultRunnerVersion)
	e.runShim(t, github.Config{DebugLock: e.n.API.Variables()})
	userKey, userSigner := newTestKey(t)
	_, strangerSigner := newTestKey(t)
	e.fake.SetUserKeys("octocat", userKey)
	gh := e.github()
	gh["actor"], gh["triggering_actor"] = "octocat", "octocat"
	job := e.fake.QueueJob(githubfake.JobSpec{
		Name: "debugged", Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": gh},
		Variables: map[string]githubfake.Variable{"ACTIONS_STEP_DEBUG": {Value: "true"}},
		Steps: []githubfake.Step{
			{Uses: "actions/checkout@v4"},
			{DisplayName: "Breaks", Run: "echo left by the job > left-behind.txt\nexit 1"},
		},
	})
	alloc, session := waitDebugSession(t, e.n, 15*time.Minute)
	t.Logf("session on port %d after %s", session.Port, time.Since(start).Round(time.Second))
	if logs := e.n.Logs(alloc, contract.TaskName, "stdout"); !strings.Contains(logs, session.Command()) {
		t.Errorf("nomad alloc logs lack the connection line %q", session.Command())
	}
	addr := allocDebugAddr(t, alloc, session.Port)
	if _, err := dialDebug(addr, strangerSigner); err == nil {
		t.Fatal("a key that is not the user's logged in")
	}
	c, err := dialDebug(addr, userSigner)
	if err != nil {
		t.Fatalf("the user's key: %v", err)
	}
	if out := runDebug(t, c, "cat left-behind.txt; ls"); !strings.Contains(out, "left by the job") || !strings.Contains(out, "README.md") {
		t.Fatalf("the session is not in the job's workspace:\n%s", out)
	}
	c.Close()
	loggedOut := time.Now()
	res := e.wait(t, job, 2*time.Minute)
	t.Logf("GitHub completed the job %s after the logout", time.Since(loggedOut).Round(time.Second))
	if res.Conclusion != "failed" {
		t.Errorf("conclusion %s, want failed", res.Conclusion)
	}
	last := stepLog(t, res, "Complete job")
	for _, want := range []string{session.Command(), "Debug session ended: the user logged out."} {
		if !strings.Contains(last, want) {
			t.Errorf("the last step's log lacks %q:\n%s", want, last)
		}
	}
	e.assertNothingRejected(t)
	e.assertCleanedUp(t)
	t.Logf("TestGitHubDebugSSH took %s", time.Since(start).Round(time.Second))
}

// waitDebugSession waits for a debug_session event in any allocation's
// events file and returns the allocation and the session.
func waitDebugSession(t *testing.T, n *Nomad, limit time.Duration) (*api.Allocation, *contract.DebugSession) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		stubs, _, err := n.API.Allocations().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, stub := range stubs {
			a, _, err := n.API.Allocations().Info(stub.ID, nil)
			if err != nil || a.ClientStatus != api.AllocClientStatusRunning {
				continue
			}
			if s := debugSessionOf(n, a); s != nil {
				return a, s
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no debug session within %s", limit)
	return nil, nil
}

func debugSessionOf(n *Nomad, a *api.Allocation) *contract.DebugSession {
	r, err := n.API.AllocFS().Cat(a, contract.EventsPath(contract.TaskName), nil)
	if err != nil {
		return nil
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if ev, err := contract.DecodeEvent(line); err == nil && ev.Type == contract.TypeDebugSession {
			return ev.Debug
		}
	}
	return nil
}

// allocDebugAddr is the debug port's host address in the allocation.
func allocDebugAddr(t *testing.T, a *api.Allocation, port int) string {
	t.Helper()
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == "debug" && p.Value == port {
			return net.JoinHostPort(p.HostIP, strconv.Itoa(port))
		}
	}
	t.Fatalf("allocation %.8s has no debug port %d", a.ID, port)
	return ""
}
