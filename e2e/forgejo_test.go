//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/forgejo"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// shim is the Forgejo/Gitea runner shim running in the test process.
type shim struct {
	rt    *forgejo.Runner
	store *forgejo.NomadStore
	stop  func() error
}

// startShim registers a runner with Gitea on its first start and runs it
// until the test ends.
func startShim(t *testing.T, g *Gitea, n *Nomad, name string, opts ...func(*forgejo.Config)) *shim {
	t.Helper()
	path, err := forgejo.VariablePath(g.URL, name)
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "shim", Level: hclog.Info, Output: shimLog{t}})
	s := &shim{store: &forgejo.NomadStore{API: n.API, Path: path}}
	cfg := forgejo.Config{
		URL: g.URL, Name: name, Capacity: 2, RegistrationToken: g.RegistrationToken(), Version: "e2e",
		Store: s.store, Nomad: &nomad.Client{API: n.API, Log: log.Named("nomad")}, Log: log,
		DebugLock: n.API.Variables(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s.rt, err = forgejo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.rt.Run(ctx) }()
	s.stop = func() error {
		cancel()
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(30 * time.Second):
			t.Error("the shim did not stop within 30s")
			return nil
		}
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// waitRegistered waits until the runner's credentials are in Nomad.
func (s *shim) waitRegistered(t *testing.T) *forgejo.Credentials {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := s.store.Load(context.Background()); err == nil && c != nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the shim did not register within 30s")
	return nil
}

type shimLog struct{ t *testing.T }

func (w shimLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncLabels registers the label parent jobs, so the shim has a catalog.
func syncLabels(t *testing.T, n *Nomad) {
	t.Helper()
	files, err := nomad.ParentFiles("../jobspecs/labels")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&nomad.Client{API: n.API}).Sync(testContext(t, time.Minute), files); err != nil {
		t.Fatal(err)
	}
}

// dispatchedJobs counts the jobs dispatched from any parent.
func dispatchedJobs(t *testing.T, n *Nomad) int {
	stubs, _, err := n.API.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, s := range stubs {
		if s.ParentID != "" {
			count++
		}
	}
	return count
}

const usesWorkflow = `name: uses
on: push
jobs:
  act:
    runs-on: solstice-test
    steps:
      - run: echo before
      - uses: some/action@v1
`

// TestGiteaUnsupportedActionFailsFast: the shim registers with a real Gitea,
// declares the catalog's labels, and a job using an action Solstice cannot
// run fails within 5 s with a log that names it, and nothing is dispatched.
func TestGiteaUnsupportedActionFailsFast(t *testing.T) {
	g := StartGitea(t)
	n := StartNomad(t, WithRawExec())
	syncLabels(t, n)
	s := startShim(t, g, n, "e2e-runner")
	creds := s.waitRegistered(t)

	var runners struct {
		Runners []struct {
			Name   string `json:"name"`
			Labels []struct {
				Name string `json:"name"`
			} `json:"labels"`
		} `json:"runners"`
	}
	g.API("GET", "admin/actions/runners", nil, 200, &runners)
	if len(runners.Runners) != 1 || runners.Runners[0].Name != "e2e-runner" || len(runners.Runners[0].Labels) < 2 {
		t.Fatalf("runners in Gitea: %+v (uuid %s)", runners, creds.UUID)
	}

	g.CreateRepo("demo")
	pushed := time.Now()
	g.PushFile("demo", ".gitea/workflows/uses.yml", usesWorkflow)
	jobs := g.WaitJobsDone("demo", 1, time.Minute)
	j := jobs[0]
	t.Logf("job %q %s/%s on %s: picked %s after the push, failed %s after it was picked (wall %s)",
		j.Name, j.Status, j.Conclusion, j.RunnerName, j.StartedAt.Sub(pushed).Round(time.Second), j.CompletedAt.Sub(j.StartedAt), time.Since(pushed).Round(100*time.Millisecond))
	if j.Conclusion != "failure" || j.RunnerName != "e2e-runner" {
		t.Fatalf("job %+v", j)
	}
	if d := j.CompletedAt.Sub(j.StartedAt); d > 5*time.Second {
		t.Fatalf("the job took %s from pick-up to failure; want at most 5s", d)
	}
	log := g.JobLog("demo", j.ID)
	t.Logf("job log:\n%s", log)
	if !strings.Contains(log, "some/action@v1") || !strings.Contains(log, "cannot run on Solstice") {
		t.Fatalf("the log does not name the action")
	}
	if c := dispatchedJobs(t, n); c != 0 {
		t.Fatalf("%d Nomad jobs dispatched", c)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("shim: %v", err)
	}
}

// TestGiteaRegisterCommand: `solstice forgejo register` registers a runner
// with Gitea and keeps its credentials in a Nomad Variable.
func TestGiteaRegisterCommand(t *testing.T) {
	g := StartGitea(t)
	n := StartNomad(t, WithRawExec())
	bin := filepath.Join(env(t, "SOLSTICE_BIN"), "solstice")
	cmd := exec.Command(bin, "forgejo", "register", "--url", g.URL, "--token", g.RegistrationToken(), "--name", "cli-runner", "--labels", "solstice-test,debian-test")
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+n.Addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("solstice forgejo register: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	path, _ := forgejo.VariablePath(g.URL, "cli-runner")
	creds, err := (&forgejo.NomadStore{API: n.API, Path: path}).Load(context.Background())
	if err != nil || creds == nil || creds.UUID == "" {
		t.Fatalf("credentials in %s: %+v, %v", path, creds, err)
	}
	var runners struct {
		Runners []struct {
			Name string `json:"name"`
		} `json:"runners"`
	}
	g.API("GET", "admin/actions/runners", nil, 200, &runners)
	if len(runners.Runners) != 1 || runners.Runners[0].Name != "cli-runner" {
		t.Fatalf("runners in Gitea: %+v", runners)
	}
}
