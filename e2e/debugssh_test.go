//go:build e2e

package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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
// nobody uses ends at its expiry, while a failing job of a repository
// without the opt-in ends at once, as it always did.
func TestGiteaDebugSSH(t *testing.T) {
	start := time.Now()
	extra := fmt.Sprintf("debug_ssh_host = %q\n    debug_ssh_max = %q\n", debugHost, debugTTL.String())
	f := &forgeVM{g: StartGitea(t), n: StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: extra}))), repo: "debugged"}
	syncLabels(t, f.n)
	f.shim = startShim(t, f.g, f.n, "e2e-vm")
	f.shim.waitRegistered(t)
	f.g.CreateRepo(f.repo)
	f.g.CreateRepo(plainRepo)
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
	// The same user's failing job in a repository without the opt-in runs
	// beside it on the runner's other slot.
	f.g.UpdateFile(f.repo, ".gitea/workflows/debug.yml", expiryWorkflow)
	f.g.PushFile(plainRepo, ".gitea/workflows/plain.yml", expiryWorkflow)
	expiring := f.waitConnectLine(t, "alone", 10*time.Minute)
	opened := time.Now()
	assertNoSession(t, f.g, plainRepo, debugTTL)
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

// plainRepo is the debug test's repository without the opt-in.
const plainRepo = "plain"

// assertNoSession: without the opt-in a failing job behaves as before
// debug sessions existed: it ends with failure within limit (while a
// session elsewhere is still open, so it waited for none) and its log
// says nothing of a session.
func assertNoSession(t *testing.T, g *Gitea, repo string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	jobs := g.WaitJobsDone(repo, 1, limit)
	t.Logf("%s: the failing job without the opt-in ended %s after the other's session opened", repo, time.Since(start).Round(time.Second))
	for _, j := range jobs {
		if j.Conclusion != "failure" {
			t.Errorf("%s/%s: %s, want failure", repo, j.Name, j.Conclusion)
		}
		log := g.JobLog(repo, j.ID)
		for _, not := range []string{"ssh -p", "Debug session", "Debug SSH", "No debug session"} {
			if strings.Contains(log, not) {
				t.Errorf("%s/%s: the log of a job without the opt-in says %q:\n%s", repo, j.Name, not, log)
			}
		}
	}
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
	// The line reaches the events file first and the task's stdout just
	// after, through Nomad's log collector: allow it a moment.
	waitFor(t, 30*time.Second, "the connection line "+session.Command()+" in nomad alloc logs", func() bool {
		return strings.Contains(e.n.Logs(alloc, contract.TaskName, "stdout"), session.Command())
	})
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

// runDebugTTL is solstice run's test-shortened -debug-ssh-max: the test
// logs out long before, it only bounds a failure.
const runDebugTTL = 3 * time.Minute

var localConnectRe = regexp.MustCompile(`ssh -p (\d+) solstice@127\.0\.0\.1 \(`)

// TestRunDebugSSH: solstice run -debug-ssh on its own local agent (the
// path a user at a terminal takes): a failing job's output shows the
// connection line on the loopback address with its expiry and how to end
// it; the caller's ~/.ssh key logs in and sees the job's workspace, a
// stranger's is refused; logging out ends the run with the job's result
// (exit 1) and leaves no VM behind.
func TestRunDebugSSH(t *testing.T) {
	start := time.Now()
	home := t.TempDir()
	userKey, userSigner := newTestKey(t)
	_, strangerSigner := newTestKey(t)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"), []byte(userKey+"\n"), 0o644)
	dir := runRepo(t, "on: push\njobs:\n  broken:\n    runs-on: solstice-test\n    steps:\n      - uses: actions/checkout@v4\n      - run: |\n          echo left by the job > left-behind.txt\n          exit 1\n")
	img, _ := testImage(t)
	bin := env(t, "SOLSTICE_BIN")
	cmd := exec.Command(filepath.Join(bin, "solstice"), "run", "-local", "-debug-ssh", "-debug-ssh-max", runDebugTTL.String(),
		"-nomad", env(t, "SOLSTICE_NOMAD"), "-plugin", filepath.Join(bin, "solstice-vm"), "-image", img, "-cache-dir", imageCacheDir(t), "ci.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var runErr error
	exited := make(chan struct{})
	go func() { runErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stopRun(cmd, exited) })

	var port string
	waitFor(t, 10*time.Minute, "the connection line", func() bool {
		if m := localConnectRe.FindStringSubmatch(out.String()); m != nil {
			port = m[1]
			return true
		}
		select {
		case <-exited:
			t.Fatalf("solstice run ended (%v) without a connection line:\n%s", runErr, out)
		default:
		}
		return false
	})
	text := out.String()
	t.Logf("connection line after %s:\n%s", time.Since(start).Round(time.Second), tail(text, 6))
	for _, want := range []string{"open until ", "log out to end it earlier", "Ctrl-C ends the session and the run"} {
		if !strings.Contains(text, want) {
			t.Errorf("the run's output lacks %q", want)
		}
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	if _, err := dialDebug(addr, strangerSigner); err == nil {
		t.Fatal("a key that is not the caller's logged in")
	}
	c, err := dialDebug(addr, userSigner)
	if err != nil {
		t.Fatalf("the caller's key: %v", err)
	}
	if got := runDebug(t, c, "cat left-behind.txt; ls"); !strings.Contains(got, "left by the job") || !strings.Contains(got, "ci.yml") {
		t.Fatalf("the session is not in the job's workspace:\n%s", got)
	}
	c.Close()
	loggedOut := time.Now()
	select {
	case <-exited:
		err = runErr
	case <-time.After(2 * time.Minute):
		err = errors.New("still running 2m after the logout")
	}
	t.Logf("solstice run ended %s after the logout; output tail:\n%s", time.Since(loggedOut).Round(time.Second), tail(out.String(), 8))
	if code := exitCode(err); code != contract.ExitJobFailed {
		t.Errorf("exit code %d, want %d (the job failed)", code, contract.ExitJobFailed)
	}
	if time.Since(loggedOut) > time.Minute {
		t.Errorf("the run ended %s after the logout, want within a minute", time.Since(loggedOut))
	}
	if !strings.Contains(out.String(), "Debug session ended: the user logged out.") {
		t.Error("the output does not say the session ended at the logout")
	}
	if m := regexp.MustCompile(`data in (\S+)\)`).FindStringSubmatch(out.String()); m == nil {
		t.Error("the run did not say where its agent's data is")
	} else if pids := qemuHolding(m[1]); len(pids) != 0 {
		t.Errorf("QEMU %v still holds the local agent's files", pids)
	}
	t.Logf("TestRunDebugSSH took %s", time.Since(start).Round(time.Second))
}

// stopRun interrupts a solstice run still going, as Ctrl-C would, so it
// stops its jobs and its local agent (a kill would leave the agent, in its
// own process group, and its VM behind); a kill only if that hangs.
func stopRun(cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
	}
}
