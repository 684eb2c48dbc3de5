//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/github"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// TestClusterPlacementAndLostNode runs GitHub jobs on a cluster of one
// server and two clients, alpha and beta. Both offer solstice-test; only
// alpha offers solstice-alpha and only beta solstice-beta. Each VM takes a
// core (the parent job's cores = 1) and each client has two, so each runs
// two jobs at a time. Ten jobs spread over both clients, the alpha-only
// label's jobs run on alpha alone; then alpha dies mid-job: its job fails
// on GitHub as an infrastructure failure naming alpha, within the bound,
// is not run again, and beta's job succeeds.
func TestClusterPlacementAndLostNode(t *testing.T) {
	alongside(t)
	start := time.Now()
	c := StartCluster(t,
		ClientSpec{Name: "alpha", Images: []string{"solstice-test", "solstice-alpha"}},
		ClientSpec{Name: "beta", Images: []string{"solstice-test", "solstice-beta"}})
	t.Logf("cluster up in %s", time.Since(start).Round(time.Second))
	syncClusterLabels(t, c.Server)
	t.Run("shipped parent jobs", func(t *testing.T) { checkShippedParents(t, c.Server) })
	t.Run("accelerator constraint", func(t *testing.T) { checkAcceleratorConstraint(t, c) })

	// The shim runs on a token holding only the shipped shims' policy, as
	// its workload identity would.
	e := newGitHubEnv(t, githubfake.Options{}, &Nomad{Agent: c.Server.Agent, API: c.ShimClient(t), t: t})
	// --runners against cores: four solstice-test runners for the four
	// cores of the two clients, one for each single-client label.
	registerRunners(t, e, "test", "solstice-test", 4)
	registerRunners(t, e, "alpha", "solstice-alpha", 1)
	registerRunners(t, e, "beta", "solstice-beta", 1)
	e.runShim(t, github.Config{})

	spreadStart := time.Now()
	stopSampling := sampleRunning(c.Server)
	ten := tenJobs(t, e)
	most := stopSampling()
	t.Logf("ten jobs on two clients: %s; most VMs running at once per client: %v", time.Since(spreadStart).Round(time.Second), most)
	checkPlacement(t, ten)
	for node, n := range most {
		if n > 2 {
			t.Errorf("%d VMs ran at once on %s, a client of two cores", n, node)
		}
	}

	drainStart := time.Now()
	drainAClientMidJob(t, c, e)
	t.Logf("drain phase: %s", time.Since(drainStart).Round(time.Second))

	lostStart := time.Now()
	killAClientMidJob(t, c, e)
	t.Logf("lost-node phase: %s; whole test %s", time.Since(lostStart).Round(time.Second), time.Since(start).Round(time.Second))
	e.assertNothingRejected(t)
	e.assertCleanedUp(t)
}

// syncClusterLabels registers the shipped parent jobs and two more made
// from solstice-test's: solstice-alpha and solstice-beta, whose images
// only one client each offers.
func syncClusterLabels(t *testing.T, n *Nomad) {
	t.Helper()
	files, err := nomad.ParentFiles("../jobspecs/labels")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../jobspecs/labels/solstice-test.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"solstice-alpha", "solstice-beta"} {
		spec := strings.NewReplacer(
			`job "solstice-solstice-test"`, fmt.Sprintf("job %q", contract.ParentPrefix+label),
			`solstice_label   = "solstice-test"`, fmt.Sprintf("solstice_label   = %q", label),
			`solstice_aliases = "debian-test"`, `solstice_aliases = ""`,
			"attr.driver.solstice-vm.image.solstice-test", "attr.driver.solstice-vm.image."+label,
			`image        = "solstice-test"`, fmt.Sprintf("image        = %q", label),
		).Replace(string(src))
		f := filepath.Join(t.TempDir(), label+".nomad.hcl")
		if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	nc := &nomad.Client{API: n.API}
	ctx := testContext(t, time.Minute)
	synced, err := nc.Sync(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	// As `solstice jobs sync` does on an ACL-enabled cluster.
	pols, err := nomad.LoadPolicies(jobspecs.ACL)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range synced {
		ids = append(ids, s.JobID)
	}
	if _, err := nc.ApplyPolicies(ctx, pols, api.DefaultNamespace, ids); err != nil {
		t.Fatalf("apply the ACL policies: %v", err)
	}
}

// checkShippedParents: every parent job shipped in jobspecs/labels, as
// Nomad holds it, places only where its image is and never re-runs a job
// behind the user's back.
func checkShippedParents(t *testing.T, n *Nomad) {
	files, err := nomad.ParentFiles("../jobspecs/labels")
	if err != nil || len(files) == 0 {
		t.Fatalf("parent jobspecs: %v %v", files, err)
	}
	for _, f := range files {
		src, _ := os.ReadFile(f)
		parsed, err := n.API.Jobs().ParseHCL(string(src), true)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		job, _, err := n.API.Jobs().Info(*parsed.ID, nil)
		if err != nil {
			t.Fatalf("%s is not registered: %v", *parsed.ID, err)
		}
		label := job.Meta["solstice_label"]
		if !hasConstraint(job.Constraints, "${attr.driver.solstice-vm.image."+label+"}", "true") {
			t.Errorf("%s: no constraint on the image attribute of %s: %+v", *job.ID, label, job.Constraints)
		}
		for _, g := range job.TaskGroups {
			r, s := g.RestartPolicy, g.ReschedulePolicy
			if r == nil || *r.Attempts != 0 || s == nil || *s.Attempts != 0 || *s.Unlimited {
				t.Errorf("%s group %s re-runs jobs: restart %+v reschedule %+v", *job.ID, *g.Name, r, s)
			}
			if g.StopAfterClientDisconnect == nil || *g.StopAfterClientDisconnect < time.Minute {
				t.Errorf("%s group %s: stop_after_client_disconnect %v does not hold back a lost node's replacement", *job.ID, *g.Name, g.StopAfterClientDisconnect)
			}
		}
	}
}

func hasConstraint(cs []*api.Constraint, attr, value string) bool {
	for _, c := range cs {
		if c.LTarget == attr && c.RTarget == value && (c.Operand == "" || c.Operand == "=") {
			return true
		}
	}
	return false
}

// checkAcceleratorConstraint: a parent job constrained to KVM clients
// finds none here (every client runs TCG) and Nomad says why.
func checkAcceleratorConstraint(t *testing.T, c *Cluster) {
	src, err := os.ReadFile("../jobspecs/labels/solstice-test.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(string(src), `job "solstice-solstice-test"`, `job "solstice-kvm-only"`, 1)
	spec = strings.Replace(spec, "  group \"job\" {", "  constraint {\n    attribute = \"${attr.driver.solstice-vm.accelerator}\"\n    value     = \"kvm\"\n  }\n\n  group \"job\" {", 1)
	c.Server.RunJob(spec)
	defer c.Server.API.Jobs().Deregister("solstice-kvm-only", true, nil)
	meta := map[string]string{contract.MetaForge: "e2e", contract.MetaInstance: "e2e", contract.MetaTaskID: "1", contract.MetaJobName: "kvm", contract.MetaSecretsKey: "none"}
	resp, _, err := c.Server.API.Jobs().Dispatch("solstice-kvm-only", meta, []byte("{}"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Server.API.Jobs().Deregister(resp.DispatchedJobID, true, nil)
	var filtered map[string]int
	waitFor(t, time.Minute, "the evaluation to fail placement", func() bool {
		ev, _, err := c.Server.API.Evaluations().Info(resp.EvalID, nil)
		if err != nil || ev.FailedTGAllocs["job"] == nil {
			return false
		}
		filtered = ev.FailedTGAllocs["job"].ConstraintFiltered
		return true
	})
	key := "${attr.driver.solstice-vm.accelerator} = kvm"
	if filtered[key] != len(c.Clients) {
		t.Fatalf("the KVM-only job was not filtered by its accelerator constraint on every client: %v", filtered)
	}
	if stubs, _, _ := c.Server.API.Jobs().Allocations(resp.DispatchedJobID, true, nil); len(stubs) != 0 {
		t.Fatalf("the KVM-only job was placed: %+v", stubs[0])
	}
}

// registerRunners registers n runners NAME-1… for one label.
func registerRunners(t *testing.T, e *ghEnv, name, label string, n int) {
	t.Helper()
	_, err := github.Register(testContext(t, time.Minute), e.store, github.Registration{
		RegisterOptions: protocol.RegisterOptions{
			URL: e.url, Token: e.fake.RegistrationToken(ghScope), Name: name,
			Labels: []string{label}, RunnerVersion: protocol.DefaultRunnerVersion,
		},
		Runners: n,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ranJob is one finished GitHub job and the node its log says it ran on.
type ranJob struct {
	name, label, node string
	res               *githubfake.Result
}

var placedOn = regexp.MustCompile(`Placed on Nomad node (\S+) `)

// tenJobs queues seven solstice-test and three solstice-alpha jobs and
// waits for all ten to succeed.
func tenJobs(t *testing.T, e *ghEnv) []ranJob {
	t.Helper()
	var jobs []*githubfake.Job
	var labels []string
	for i := range 10 {
		label := "solstice-test"
		if i%3 == 2 {
			label = "solstice-alpha"
		}
		labels = append(labels, label)
		jobs = append(jobs, e.fake.QueueJob(githubfake.JobSpec{
			Name: fmt.Sprintf("spread%d", i), Labels: []string{label}, ContextData: map[string]any{"github": e.github()},
			Steps: []githubfake.Step{{DisplayName: "Hello", Run: fmt.Sprintf("echo hello from job %d", i)}},
		}))
	}
	ran := make([]ranJob, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := j.Wait(testContext(t, 8*time.Minute))
			if err != nil {
				t.Errorf("job spread%d: %v", i, err)
				return
			}
			ran[i] = ranJob{name: fmt.Sprintf("spread%d", i), label: labels[i], res: res}
			if m := placedOn.FindStringSubmatch(setupLog(res)); m != nil {
				ran[i].node = m[1]
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ran
}

// setupLog is the "Set up job" step's log, where the shim says where the
// job was placed.
func setupLog(res *githubfake.Result) string {
	for _, s := range res.StepResults {
		if s.Name == "Set up job" {
			return res.StepLogs[s.ExternalID].Text
		}
	}
	return ""
}

// checkPlacement: all ten succeeded, both clients ran solstice-test jobs,
// and the alpha-only label ran on alpha alone.
func checkPlacement(t *testing.T, ran []ranJob) {
	t.Helper()
	perNode := map[string]int{}
	for _, r := range ran {
		if r.res.Conclusion != "succeeded" {
			t.Errorf("%s (%s): %s %v", r.name, r.label, r.res.Conclusion, stepsOf(r.res))
		}
		if r.node == "" {
			t.Errorf("%s: its log does not say where it ran:\n%s", r.name, setupLog(r.res))
		}
		perNode[r.node]++
		if r.label == "solstice-alpha" && r.node != "alpha" {
			t.Errorf("%s of the alpha-only label ran on %q", r.name, r.node)
		}
	}
	t.Logf("jobs per client: %v", perNode)
	if perNode["alpha"] == 0 || perNode["beta"] == 0 {
		t.Errorf("the jobs did not spread over both clients: %v", perNode)
	}
}

// sampleRunning counts, every half second, the running allocations on
// each node; the function it returns stops it and gives the most seen.
func sampleRunning(n *Nomad) func() map[string]int {
	most := map[string]int{}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if allocs, _, err := n.API.Allocations().List(nil); err == nil {
				now := map[string]int{}
				for _, a := range allocs {
					if a.ClientStatus == api.AllocClientStatusRunning {
						now[a.NodeName]++
					}
				}
				for node, c := range now {
					most[node] = max(most[node], c)
				}
			}
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return func() map[string]int { close(done); <-stopped; return most }
}

// lostReportBound is how soon after alpha dies GitHub must show its job
// failed: Nomad's detection (clusterLostAfter), one shim status read (2s)
// and the report, with room for a loaded machine.
const lostReportBound = clusterLostAfter + 2*time.Second + 10*time.Second

// killAClientMidJob runs a job on each client, kills alpha while both
// run, and checks what GitHub and Nomad show afterwards.
func killAClientMidJob(t *testing.T, c *Cluster, e *ghEnv) {
	t.Helper()
	alpha, beta := c.Client("alpha"), c.Client("beta")
	survivor := e.fake.QueueJob(githubfake.JobSpec{
		Name: "survivor", Labels: []string{"solstice-beta"}, ContextData: map[string]any{"github": e.github()},
		Steps: []githubfake.Step{{DisplayName: "Outlive", Run: "echo started; sleep 45; echo survived"}},
	})
	e.waitStep(t, survivor, "Outlive")
	// Keep the solstice-test job off beta, so that beta could take a
	// replacement of it: nothing but Solstice stops that.
	victim := foreverJobOff(t, c, e, "victim", beta)
	victimJob := dispatchOf(t, c.Server, "victim")
	if allocs, _, err := c.Server.API.Jobs().Allocations(victimJob, true, nil); err != nil || len(allocs) != 1 || allocs[0].NodeName != "alpha" {
		t.Fatalf("the victim does not run on alpha alone: %v %s", err, describeStubs(allocs))
	}

	killed := time.Now()
	alpha.Crash()
	res := e.wait(t, victim, 3*time.Minute)
	reported := res.CompletedAt.Sub(killed)
	complete := stepLog(t, res, "Complete job")
	t.Logf("alpha killed; GitHub showed the job %s %s later (bound %s):\n%s", res.Conclusion, reported.Round(100*time.Millisecond), lostReportBound, complete)
	if res.Conclusion != "failed" || !strings.Contains(complete, `"alpha"`) || !strings.Contains(complete, alpha.NodeID) ||
		!strings.Contains(complete, "was lost") || !strings.Contains(complete, fmt.Sprintf("exit code %d", contract.ExitInfrastructure)) {
		t.Errorf("the victim's end does not say its node alpha was lost (an infrastructure failure): %s", res.Conclusion)
	}
	if reported > lostReportBound {
		t.Errorf("GitHub learned of the lost node after %s, over the bound of %s", reported, lostReportBound)
	}

	sres := e.wait(t, survivor, 3*time.Minute)
	if sres.Conclusion != "succeeded" || !strings.Contains(stepLog(t, sres, "Outlive"), "survived") {
		t.Errorf("beta's job was hurt by alpha's death: %s %v", sres.Conclusion, stepsOf(sres))
	}
	checkNothingLeft(t, c, victimJob)
}

// foreverJobOff queues a solstice-test job that sleeps for good and waits
// until it runs, on a client other than away.
func foreverJobOff(t *testing.T, c *Cluster, e *ghEnv, name string, away *ClusterClient) *githubfake.Job {
	t.Helper()
	toggleEligibility(t, c.Server, away.NodeID, false)
	j := e.fake.QueueJob(githubfake.JobSpec{
		Name: name, Labels: []string{"solstice-test"}, ContextData: map[string]any{"github": e.github()},
		Steps: []githubfake.Step{{DisplayName: "Forever", Run: "echo started; sleep 600"}},
	})
	e.waitStep(t, j, "Forever")
	toggleEligibility(t, c.Server, away.NodeID, true)
	return j
}

// drainAClientMidJob drains beta past a one-second deadline while it runs
// a job: GitHub shows the job failed as an infrastructure failure naming
// beta, and the replacement Nomad places on alpha at once is stopped
// before it runs a step.
func drainAClientMidJob(t *testing.T, c *Cluster, e *ghEnv) {
	t.Helper()
	alpha, beta := c.Client("alpha"), c.Client("beta")
	j := foreverJobOff(t, c, e, "drained", alpha)
	jobID := dispatchOf(t, c.Server, "drained")
	drained := time.Now()
	if _, err := c.Server.API.Nodes().UpdateDrain(beta.NodeID, &api.DrainSpec{Deadline: time.Second}, false, nil); err != nil {
		t.Fatalf("drain beta: %v", err)
	}
	res := e.wait(t, j, 3*time.Minute)
	complete := stepLog(t, res, "Complete job")
	t.Logf("beta drained; GitHub showed the job %s %s later:\n%s", res.Conclusion, res.CompletedAt.Sub(drained).Round(100*time.Millisecond), complete)
	if res.Conclusion != "failed" || !strings.Contains(complete, `"beta"`) || !strings.Contains(complete, beta.NodeID) || !strings.Contains(complete, "to move it elsewhere") {
		t.Errorf("the drained job's end does not say Nomad took it off beta: %s", res.Conclusion)
	}
	waitFor(t, 2*time.Minute, "the drained job's allocations to end", func() bool { return liveAllocs(c.Server.API, jobID) == 0 })
	allocs, _, err := c.Server.API.Jobs().Allocations(jobID, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the drained job's allocations: %s", describeStubs(allocs))
	for _, s := range allocs {
		if s.NodeID != beta.NodeID && ranAStep(c.Server, s.ID) {
			t.Errorf("Nomad's replacement %s on %s ran a step of the drained job", s.ID[:8], s.NodeName)
		}
	}
	if _, err := c.Server.API.Nodes().UpdateDrain(beta.NodeID, nil, true, nil); err != nil {
		t.Fatalf("end beta's drain: %v", err)
	}
}

// ranAStep says whether the allocation's events file shows a step start.
func ranAStep(n *Nomad, allocID string) bool {
	a, _, err := n.API.Allocations().Info(allocID, nil)
	if err != nil {
		return false
	}
	r, err := n.API.AllocFS().Cat(a, contract.EventsPath(contract.TaskName), nil)
	if err != nil {
		return false // no events file: the guest never started
	}
	defer r.Close()
	data, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	return strings.Contains(string(data), `"type":"`+contract.TypeStepStarted+`"`)
}

// waitStep waits until GitHub shows the job's step in progress.
func (e *ghEnv) waitStep(t *testing.T, j *githubfake.Job, name string) {
	t.Helper()
	waitFor(t, 5*time.Minute, "step "+name+" to run", func() bool {
		for _, s := range j.Snapshot().Steps {
			if s.Name == name && s.Status == 3 {
				return true
			}
		}
		return false
	})
}

func toggleEligibility(t *testing.T, n *Nomad, nodeID string, eligible bool) {
	t.Helper()
	if _, err := n.API.Nodes().ToggleEligibility(nodeID, eligible, nil); err != nil {
		t.Fatalf("node eligibility: %v", err)
	}
}

// dispatchOf finds the dispatched Nomad job of a GitHub job by its name.
func dispatchOf(t *testing.T, n *Nomad, name string) string {
	t.Helper()
	stubs, _, err := n.API.Jobs().ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if s.ParentID != "" && s.Meta[contract.MetaJobName] == name {
			return s.ID
		}
	}
	t.Fatalf("no dispatched job named %q", name)
	return ""
}

// checkNothingLeft: the lost job has its one allocation and no other (it
// was not re-run), every dispatch is over, no secrets Variable is left
// and no VM runs on the surviving client.
func checkNothingLeft(t *testing.T, c *Cluster, victimJob string) {
	t.Helper()
	nc := c.Server.API
	allocs, _, err := nc.Jobs().Allocations(victimJob, true, nil)
	if err != nil || len(allocs) != 1 || allocs[0].NodeName != "alpha" || allocs[0].ClientStatus != "lost" {
		t.Errorf("the lost job's allocations: %v %s", err, describeStubs(allocs))
	}
	if job, _, err := nc.Jobs().Info(victimJob, nil); err != nil || !stopped(job) {
		t.Errorf("the lost job was not stopped: %v", err)
	}
	// A stopped job may read "pending" for a while: the follow-up
	// evaluation stop_after_client_disconnect scheduled is still due, and
	// finds nothing to place when it runs.
	waitFor(t, time.Minute, "every dispatch to be over", func() bool {
		stubs, _, err := nc.Jobs().List(nil)
		if err != nil {
			return false
		}
		for _, s := range stubs {
			if s.ParentID == "" {
				continue
			}
			job, _, err := nc.Jobs().Info(s.ID, nil)
			if err != nil || (s.Status != "dead" && !stopped(job)) || liveAllocs(nc, s.ID) > 0 {
				t.Logf("dispatch %s: %s, stopped %v, %d live allocations (%v)", s.ID, s.Status, err == nil && stopped(job), liveAllocs(nc, s.ID), err)
				return false
			}
		}
		return true
	})
	vars, _, err := nc.Variables().PrefixList(contract.SecretsPrefix, nil)
	if err != nil || len(vars) != 0 {
		t.Errorf("secrets left in Nomad: %v %v", vars, err)
	}
	if pids := c.Client("beta").QEMUs(); len(pids) != 0 {
		t.Errorf("QEMU still runs on beta: %v", pids)
	}
	if pids := c.Client("alpha").QEMUs(); len(pids) != 0 {
		t.Errorf("QEMU of the dead alpha still runs: %v", pids)
	}
}

// stopped: the job was stopped, or, by a shim on its workload identity
// (which may not deregister jobs on an ACL-enabled cluster), scaled to
// zero, so that nothing can place it again.
func stopped(job *api.Job) bool {
	if job.Stop != nil && *job.Stop {
		return true
	}
	for _, g := range job.TaskGroups {
		if g.Count == nil || *g.Count != 0 {
			return false
		}
	}
	return len(job.TaskGroups) > 0
}

// liveAllocs counts a job's allocations that are not over.
func liveAllocs(nc *api.Client, jobID string) int {
	stubs, _, err := nc.Jobs().Allocations(jobID, true, nil)
	if err != nil {
		return -1
	}
	live := 0
	for _, s := range stubs {
		if s.ClientStatus == api.AllocClientStatusPending || s.ClientStatus == api.AllocClientStatusRunning {
			live++
		}
	}
	return live
}

func describeStubs(stubs []*api.AllocationListStub) string {
	var parts []string
	for _, s := range stubs {
		parts = append(parts, fmt.Sprintf("%s on %s: %s/%s (%s)", s.ID[:8], s.NodeName, s.ClientStatus, s.DesiredStatus, s.DesiredDescription))
	}
	return strings.Join(parts, "; ")
}
