//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/forgejo"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// forgeVM is a real Gitea, a Nomad agent with the solstice-vm plugin and
// the test image, and a shim registered with that Gitea.
type forgeVM struct {
	g    *Gitea
	n    *Nomad
	shim *shim
	repo string
}

func startForgeVM(t *testing.T) *forgeVM {
	t.Helper()
	return startForgeVMWith(t, pluginOpts{})
}

// startForgeVMWith is startForgeVM with the client's plugin options.
func startForgeVMWith(t *testing.T, o pluginOpts) *forgeVM {
	t.Helper()
	f := &forgeVM{g: StartGitea(t), n: StartNomad(t, WithPlugin(pluginConfig(t, o))), repo: "demo"}
	syncLabels(t, f.n)
	f.shim = startShim(t, f.g, f.n, "e2e-vm")
	f.shim.waitRegistered(t)
	f.g.CreateRepo(f.repo)
	return f
}

// job finds a job by name among the repository's jobs.
func (f *forgeVM) job(t *testing.T, jobs []GiteaJob, name string) GiteaJob {
	t.Helper()
	for _, j := range jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("no job %q in %+v", name, jobs)
	return GiteaJob{}
}

// assertCleanedUp checks that every dispatched job was finished: no
// secrets are left and nothing is in flight.
func (f *forgeVM) assertCleanedUp(t *testing.T) {
	t.Helper()
	c := &nomad.Client{API: f.n.API, Log: hclog.NewNullLogger()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs, err := c.InFlight(context.Background(), forgejo.ForgeName, forgejo.Instance(f.g.URL, "e2e-vm"))
		if err == nil && len(jobs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still in flight after their report: %v %v", jobs, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

const ciWorkflow = `name: ci
on: push
jobs:
  build:
    runs-on: solstice-test
    strategy:
      matrix:
        arch: [amd64, arm64]
    outputs:
      probe: ${{ steps.p.outputs.value }}
    steps:
      - uses: actions/checkout@v4
      - name: Look around
        run: |
          test -f README.md && echo "checked out $(git rev-parse HEAD)"
          echo "arch=${{ matrix.arch }} sha=${{ github.sha }}"
          echo "FROM_ENV=hello-env" >> "$GITHUB_ENV"
          echo "secret is ${{ secrets.MY_SECRET }}"
      - id: p
        name: Output
        run: |
          echo "env says $FROM_ENV"
          echo "value=42" >> "$GITHUB_OUTPUT"
  after:
    needs: build
    runs-on: debian-test
    steps:
      - run: echo "probe=${{ needs.build.outputs.probe }}"
      - run: exit 3
      - if: always()
        run: echo cleanup ran
`

// TestGiteaWorkflowInVMs runs a matrix job, checkout, env and output
// files, needs, a secret and a failing step through Gitea, the shim,
// Nomad and real VMs, with warm starts on: once a first job has made the
// image's template, every job of the workflow, the two matrix jobs at
// once among them, starts as a clone of it, and its log says so.
// (TestGiteaShimAsNomadService runs the same workflow booting cold.)
func TestGiteaWorkflowInVMs(t *testing.T) {
	tplDir := t.TempDir()
	f := startForgeVMWith(t, pluginOpts{templateDir: tplDir})
	primeWarm(t, f.n, tplDir)
	for _, j := range f.runCIWorkflow(t) {
		if log := f.g.JobLog(f.repo, j.ID); !strings.Contains(log, "restored from template") {
			t.Errorf("%s did not start warm; its log:\n%s", j.Name, log)
		}
	}
	f.assertCleanedUp(t)
}

// runCIWorkflow pushes ciWorkflow and checks every job's result and log.
// It returns the jobs.
func (f *forgeVM) runCIWorkflow(t *testing.T) []GiteaJob {
	t.Helper()
	f.g.API("PUT", fmt.Sprintf("repos/%s/%s/actions/secrets/MY_SECRET", f.g.User, f.repo), map[string]any{"data": "s3cr3t-value"}, 201, nil)
	f.g.PushFile(f.repo, ".gitea/workflows/ci.yml", ciWorkflow)
	jobs := f.g.WaitJobsDone(f.repo, 3, 15*time.Minute)

	for _, arch := range []string{"amd64", "arm64"} {
		j := f.job(t, jobs, "build ("+arch+")")
		log := f.g.JobLog(f.repo, j.ID)
		t.Logf("%s: %s\n%s", j.Name, j.Conclusion, log)
		if j.Conclusion != "success" {
			t.Fatalf("%s: %s", j.Name, j.Conclusion)
		}
		for _, want := range []string{"Placed on Nomad node", "VM up", "checked out ", "arch=" + arch, "env says hello-env", "secret is ***", "Job succeeded"} {
			if !strings.Contains(log, want) {
				t.Errorf("%s: the log lacks %q", j.Name, want)
			}
		}
		if strings.Contains(log, "s3cr3t-value") {
			t.Errorf("%s: the secret's value is in the log", j.Name)
		}
	}
	f.assertNoSecretsInNomad(t, "s3cr3t-value")
	after := f.job(t, jobs, "after")
	log := f.g.JobLog(f.repo, after.ID)
	t.Logf("after: %s\n%s", after.Conclusion, log)
	if after.Conclusion != "failure" {
		t.Fatalf("after: %s", after.Conclusion)
	}
	for _, want := range []string{"probe=42", "Process completed with exit code 3.", "cleanup ran", "Job failed"} {
		if !strings.Contains(log, want) {
			t.Errorf("after: the log lacks %q", want)
		}
	}
	return jobs
}

// assertNoSecretsInNomad reads every dispatched job back from Nomad (spec,
// meta, the decompressed plan payload, allocations) and looks for the
// secret's value and for any token in the plan's contexts.
func (f *forgeVM) assertNoSecretsInNomad(t *testing.T, secret string) {
	t.Helper()
	assertNoSecretsInNomad(t, f.n, secret)
}

// assertNoSecretsInNomad checks every dispatched job of n; see the method.
func assertNoSecretsInNomad(t *testing.T, n *Nomad, secret string) {
	t.Helper()
	stubs, _, err := n.API.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if s.ParentID == "" {
			continue
		}
		job, _, err := n.API.Jobs().Info(s.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := contract.DecodePlanAuto(bytes.NewReader(job.Payload))
		if err != nil {
			t.Fatalf("job %s payload: %v", s.ID, err)
		}
		planJSON, _ := json.Marshal(p)
		allocs, _, _ := n.API.Jobs().Allocations(s.ID, true, nil)
		specJSON, _ := json.Marshal(job)
		allocJSON, _ := json.Marshal(allocs)
		for where, text := range map[string]string{"spec and meta": string(specJSON), "plan payload": string(planJSON), "allocations": string(allocJSON)} {
			if strings.Contains(text, secret) {
				t.Errorf("job %s: the secret is in its %s", s.ID, where)
			}
		}
		var github map[string]any
		json.Unmarshal(p.Contexts["github"], &github)
		for k, v := range github {
			if strings.HasSuffix(strings.ToLower(k), "token") && v != "" && v != nil {
				t.Errorf("job %s: the plan's github context carries %s", s.ID, k)
			}
		}
	}
}

// TestGiteaShimAsNomadService runs the shim from jobspecs/runner-shims.nomad.hcl
// as a Nomad service job (token from its Variable, registered in Nomad's
// service catalog with a passing /healthz check), then the same workflow.
// On the way it runs the docs' nomad commands for operators: the client's
// node status, installing the shim's binary and upgrading it with nomad
// job restart (the shim comes back on the new file and takes the
// workflow's jobs), the shim's log, a failed job's status, allocation,
// logs and events file, and a job queued for an image no client has.
func TestGiteaShimAsNomadService(t *testing.T) {
	alongside(t)
	f := &forgeVM{g: StartGitea(t), n: StartNomad(t, WithRawExec(), WithPlugin(pluginConfig(t, pluginOpts{}))), repo: "demo"}
	node, err := f.n.WaitNode(testContext(t, 2*time.Minute), "solstice-vm")
	if err != nil {
		t.Fatal(err)
	}
	syncLabels(t, f.n)
	t.Run("node status", func(t *testing.T) { nodeStatus(t, f.n, node) })

	bin := filepath.Join(t.TempDir(), "solstice") // for /usr/local/bin/solstice
	installSolstice(t, bin)
	runShims(t, f.g, f.n, "e2e-vm", "", "solstice_binary="+bin) // the default provider: Nomad
	waitShimService(t, f.n)
	if out, err := f.n.nomadCLI("service", "list"); err != nil || !strings.Contains(out, forgejoService) {
		t.Fatalf("nomad service list: %v\n%s", err, out)
	}
	upgradeShims(t, f.n, bin)

	f.g.CreateRepo(f.repo)
	jobs := f.runCIWorkflow(t)
	failed := f.g.JobLog(f.repo, f.job(t, jobs, "after").ID)
	f.assertCleanedUp(t)
	t.Run("shim log", func(t *testing.T) { checkShimLog(t, f.n, 3) })
	t.Run("failed job", func(t *testing.T) { inspectFailedJob(t, f.n, failed) })
	t.Run("queued job", func(t *testing.T) { queuedJob(t, f) })
}

const tickWorkflow = `name: ticks
on: push
jobs:
  ticks:
    runs-on: solstice-test
    steps:
      - run: for i in $(seq 1 %d); do echo "tick $i"; sleep 1; done
`

// runningTicks pushes the tick workflow and waits until its job's VM runs.
func (f *forgeVM) runningTicks(t *testing.T, n int) {
	t.Helper()
	f.g.PushFile(f.repo, ".gitea/workflows/ticks.yml", fmt.Sprintf(tickWorkflow, n))
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		stubs, _, err := f.n.API.Jobs().List(nil)
		if err == nil {
			for _, s := range stubs {
				if s.ParentID != "" && s.JobSummary != nil && s.JobSummary.Summary["job"].Running > 0 {
					time.Sleep(15 * time.Second) // the guest boots and starts ticking
					return
				}
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatal("the tick job's VM never ran")
}

// assertTicks checks every tick is in the log exactly once, in order.
func assertTicks(t *testing.T, log string, n int) {
	t.Helper()
	got := regexp.MustCompile(`tick (\d+)`).FindAllStringSubmatch(log, -1)
	if len(got) != n {
		t.Fatalf("%d tick lines, want %d:\n%s", len(got), n, log)
	}
	for i, m := range got {
		if m[1] != fmt.Sprint(i+1) {
			t.Fatalf("tick line %d says %s:\n%s", i, m[1], log)
		}
	}
}

// TestGiteaShimRestartMidJob: a shim stopped while its job runs leaves the
// job in Nomad; the next shim resumes it and the log has every line once.
func TestGiteaShimRestartMidJob(t *testing.T) {
	f := startForgeVM(t)
	f.runningTicks(t, 40)
	if err := f.shim.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	startShim(t, f.g, f.n, "e2e-vm")
	j := f.g.WaitJobsDone(f.repo, 1, 10*time.Minute)[0]
	log := f.g.JobLog(f.repo, j.ID)
	t.Logf("the job's log:\n%s", log)
	if j.Conclusion != "success" {
		t.Fatalf("%s\n%s", j.Conclusion, log)
	}
	assertTicks(t, log, 40)
	f.assertCleanedUp(t)
}

// TestGiteaOutageMidJob: Gitea is down for a while as the job runs; the
// shim retries, and nothing is lost or repeated.
func TestGiteaOutageMidJob(t *testing.T) {
	f := startForgeVM(t)
	f.runningTicks(t, 40)
	f.g.Stop()
	time.Sleep(30 * time.Second)
	f.g.Restart()
	j := f.g.WaitJobsDone(f.repo, 1, 10*time.Minute)[0]
	log := f.g.JobLog(f.repo, j.ID)
	if j.Conclusion != "success" {
		t.Fatalf("%s\n%s", j.Conclusion, log)
	}
	assertTicks(t, log, 40)
	f.assertCleanedUp(t)
}

const cancelWorkflow = `name: long
on: push
concurrency:
  group: long
  cancel-in-progress: true
jobs:
  long:
    runs-on: solstice-test
    steps:
      - run: %s
`

// TestGiteaCancel: a second push cancels the running job (concurrency
// cancel-in-progress; Gitea 1.26 has no cancel API). The shim stops the
// Nomad job, the VM powers off, and the forge shows the job cancelled.
func TestGiteaCancel(t *testing.T) {
	f := startForgeVM(t)
	f.g.PushFile(f.repo, ".gitea/workflows/long.yml", fmt.Sprintf(cancelWorkflow, `echo started; sleep 600`))
	deadline := time.Now().Add(10 * time.Minute)
	var jobID string
	for jobID == "" && time.Now().Before(deadline) {
		stubs, _, _ := f.n.API.Jobs().List(nil)
		for _, s := range stubs {
			if s.ParentID != "" && s.JobSummary != nil && s.JobSummary.Summary["job"].Running > 0 {
				jobID = s.ID
			}
		}
		time.Sleep(time.Second)
	}
	if jobID == "" {
		t.Fatal("the long job never ran")
	}
	time.Sleep(10 * time.Second)
	cancelled := time.Now()
	f.g.UpdateFile(f.repo, ".gitea/workflows/long.yml", fmt.Sprintf(cancelWorkflow, "echo second"))
	f.n.WaitAlloc(jobID, 3*time.Minute, "stopped", func(a *api.Allocation) bool { return a.ClientStatus == "complete" || a.ClientStatus == "failed" })
	t.Logf("the VM of the cancelled job stopped %s after the second push", time.Since(cancelled).Round(time.Second))
	jobs := f.g.WaitJobsDone(f.repo, 2, 10*time.Minute)
	var first GiteaJob
	for _, j := range jobs {
		if first.ID == 0 || j.ID < first.ID {
			first = j
		}
	}
	log := f.g.JobLog(f.repo, first.ID)
	t.Logf("the cancelled job's log:\n%s", log)
	if first.Conclusion != "cancelled" || !strings.Contains(log, "started") || !strings.Contains(log, "Job cancelled") {
		t.Fatalf("the first job: %s", first.Conclusion)
	}
	f.assertCleanedUp(t)
}
