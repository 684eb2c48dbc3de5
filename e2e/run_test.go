//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// runRepo makes a git repository holding one workflow file, for solstice
// run to check out.
func runRepo(t *testing.T, workflow string) string {
	dir := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@test", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("git", "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "ci.yml"), []byte(workflow), 0o644)
	run("git", "add", ".")
	run("git", "commit", "-q", "-m", "ci")
	return dir
}

// solsticeRun starts `solstice run` against the test's agent.
func solsticeRun(t *testing.T, n *Nomad, dir string, args ...string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), append([]string{"run"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+n.Addr)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func syncLabel(t *testing.T, n *Nomad, edit func(string) string) {
	src, err := os.ReadFile("../jobspecs/labels/solstice-test.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(src)
	if edit != nil {
		spec = edit(spec)
	}
	f := filepath.Join(t.TempDir(), "solstice-test.nomad.hcl")
	os.WriteFile(f, []byte(spec), 0o644)
	if _, err := (&nomad.Client{API: n.API}).Sync(testContext(t, time.Minute), []string{f}); err != nil {
		t.Fatal(err)
	}
}

// dispatchedNames lists the dispatched jobs' names in dispatch order.
func dispatchedNames(t *testing.T, n *Nomad) []string {
	var names []string
	for _, job := range childJobs(t, n) {
		names = append(names, job.Meta[contract.MetaJobName])
	}
	return names
}

const matrixWorkflow = `
name: matrix
on: push
jobs:
  test:
    runs-on: solstice-test
    strategy:
      matrix:
        os: [illumos, linux]
        version: [12, 14, 16]
        exclude:
          - os: illumos
            version: 12
        include:
          - os: linux
            version: 16
            experimental: true
          - os: bsd
            version: 18
    steps:
      - run: echo "${{ matrix.os }} ${{ matrix.version }} ${{ matrix.experimental }}"
`

// TestRunMatrixIncludeExclude: the dispatched combinations and their order
// are GitHub's (product in key order, first key outermost, exclude, then
// include extending a match or adding a combination).
func TestRunMatrixIncludeExclude(t *testing.T) {
	alongside(t)
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	syncLabel(t, n, nil)
	dir := runRepo(t, matrixWorkflow)
	cmd, out := solsticeRun(t, n, dir, "--secret", "MATRIX_SECRET=m4trix-secret", "ci.yml")
	err := cmd.Wait()
	t.Logf("solstice run output:\n%s", out)
	if err != nil {
		t.Fatalf("solstice run: %v", err)
	}
	want := []string{"test (illumos, 14)", "test (illumos, 16)", "test (linux, 12)", "test (linux, 14)", "test (linux, 16)", "test (bsd, 18)"}
	if got := dispatchedNames(t, n); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("dispatched %q\nwant       %q", got, want)
	}
	if !strings.Contains(out.String(), "linux 16 true") {
		t.Error("the include's extra value did not reach the job")
	}
	vars, _, err := n.API.Variables().PrefixList(contract.SecretsPrefix, nil)
	if err != nil || len(vars) != 0 {
		t.Fatalf("secrets Variables left after the run: %v (%v)", vars, err)
	}
}

// TestRunInterruptStopsTheJob: SIGINT to solstice run stops the Nomad job
// and the VM within the job's kill_timeout.
func TestRunInterruptStopsTheJob(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	syncLabel(t, n, nil)
	dir := runRepo(t, `
name: long
on: push
jobs:
  sleepy:
    runs-on: solstice-test
    steps:
      - run: for i in $(seq 1 600); do echo still going $i; sleep 1; done
      - if: cancelled()
        run: echo cleaning up after the cancel
`)
	cmd, out := solsticeRun(t, n, dir, "ci.yml")
	waitFor(t, 4*time.Minute, "the step to run", func() bool { return strings.Contains(out.String(), "still going 3") })
	qemuPIDs := qemuHolding(n.DataDir())
	if len(qemuPIDs) != 1 {
		t.Fatalf("want the job's one QEMU, found %v", qemuPIDs)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	took := time.Since(start)
	t.Logf("solstice run stopped %s after SIGINT; output tail:\n%s", took.Round(time.Second), tail(out.String(), 15))
	if code := exitCode(err); code != contract.ExitCancelled {
		t.Errorf("exit code %d, want %d (cancelled)", code, contract.ExitCancelled)
	}
	if took > 60*time.Second+30*time.Second {
		t.Errorf("stopping took %s, more than the job's kill_timeout (60s) allows", took)
	}
	for _, pid := range qemuPIDs {
		if alive(pid) {
			t.Errorf("qemu pid %d still runs after the cancel", pid)
		}
	}
	for _, s := range mustJobs(t, n) {
		if s.ParentID != "" && s.Status != "dead" {
			t.Errorf("job %s is %s after the cancel", s.ID, s.Status)
		}
	}
	if !strings.Contains(out.String(), "cleaning up after the cancel") {
		t.Error("the if: cancelled() step did not run")
	}
}

func mustJobs(t *testing.T, n *Nomad) []*api.JobListStub {
	stubs, _, err := n.API.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	return stubs
}

// TestFollowerRestartLosesNothing stops following a job mid-way and
// resumes from the last offset: every event arrives exactly once.
func TestFollowerRestartLosesNothing(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "ticks", Name: "ticks"},
		Steps: []contract.Step{{Name: "Count", Run: "for i in $(seq 1 15); do echo tick $i; sleep 1; done"}}}
	d, job := dispatchPlan(t, n, p, nil)
	var st nomad.Status
	waitFor(t, 4*time.Minute, "the job to be placed", func() bool {
		var err error
		st, err = d.Status(context.Background(), job)
		return err == nil && st.AllocID != ""
	})
	var seqs []int64
	var offset int64
	first, stop := context.WithCancel(context.Background())
	go func() {
		d.Follow(first, st, 0, func(line []byte, next int64) error {
			ev, _ := contract.DecodeEvent(line)
			seqs, offset = append(seqs, ev.Seq), next
			if ev.Type == contract.TypeLog && ev.Line == "tick 4" {
				stop() // the follower dies here
				return contract.ErrStop
			}
			return nil
		})
		stop()
	}()
	<-first.Done()
	t.Logf("first follower stopped after %d events at offset %d", len(seqs), offset)
	ctx := testContext(t, 4*time.Minute)
	err := d.Follow(ctx, st, offset, func(line []byte, next int64) error {
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Fatalf("resumed mid-line at %d: %v", offset, err)
		}
		seqs = append(seqs, ev.Seq)
		if ev.Terminal() {
			return contract.ErrStop
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("event %d has seq %d after the follower restart (%v)", i+1, s, seqs)
		}
	}
}

// TestTwentyJobsRoomForTwo: twenty jobs against a client with room for
// two all finish; Nomad holds the rest in its queue.
func TestTwentyJobsRoomForTwo(t *testing.T) {
	alongside(t)
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	var node *api.Node
	nodes, _, _ := n.API.Nodes().List(nil)
	node, _, _ = n.API.Nodes().Info(nodes[0].ID, nil)
	room := int(node.NodeResources.Memory.MemoryMB)
	perJob := room * 2 / 5 // two fit, a third does not
	syncLabel(t, n, func(s string) string {
		return strings.Replace(s, "memory = 1024", fmt.Sprintf("memory = %d", perJob), 1)
	})
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := map[string]int{}
	for i := 0; i < 20; i++ {
		p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: fmt.Sprintf("j%02d", i), Name: fmt.Sprintf("job %02d", i)},
			Steps: []contract.Step{{Name: "Hello", Run: fmt.Sprintf("echo job %d", i)}}}
		d, job := dispatchPlan(t, n, p, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, err := d.Status(context.Background(), job)
				if err == nil && st.Stage == nomad.Finished {
					mu.Lock()
					done[job.ID] = st.ExitCode
					mu.Unlock()
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	maxRunning := 0
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-ticker.C:
			maxRunning = max(maxRunning, runningAllocs(n))
		case <-time.After(20 * time.Minute):
			t.Fatalf("only %d of 20 jobs finished in 20 minutes", len(done))
		}
	}
	t.Logf("20 jobs with room for 2: all finished in %s (at most %d ran at once)", time.Since(start).Round(time.Second), maxRunning)
	for id, code := range done {
		if code != contract.ExitSuccess {
			t.Errorf("job %s ended with %d", id, code)
		}
	}
	if len(done) != 20 || maxRunning != 2 {
		t.Fatalf("%d jobs finished, %d ran at once", len(done), maxRunning)
	}
}

func runningAllocs(n *Nomad) int {
	allocs, _, err := n.API.Allocations().List(nil)
	if err != nil {
		return 0
	}
	c := 0
	for _, a := range allocs {
		if a.ClientStatus == api.AllocClientStatusRunning {
			c++
		}
	}
	return c
}

// helloJobs are examples/hello.yml's runs, in the order solstice run
// dispatches them (the needs-free jobs in the workflow's order, then
// report and deploy, which need build).
var helloJobs = []string{"build (plain)", "build (fancy)", "legacy", "report", "deploy"}

// TestRunDocCommands runs README.md's solstice run lines and
// getting-started.md's --bundle-listen line as a reader types them (read
// from the docs, placeholders substituted) against one agent whose
// catalog has the test image as solstice-test, the label
// examples/hello.yml runs on; NOMAD_ADDR names the agent, as the README
// says. Each run checks out this repository, uncommitted changes
// included.
func TestRunDocCommands(t *testing.T) {
	alongside(t)
	// getting-started.md: listen on an address the clients reach and allow
	// it in bundle_hosts. The loopback entry stays for the README's runs;
	// it does not match the other address.
	bundleAddr := freePort(t, nonLoopbackIPv4(t))
	hosts := fmt.Sprintf("bundle_hosts = [%q, %q]", "127.0.0.1/bundle/", bundleAddr+"/bundle/")
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: hosts})))
	syncLabel(t, n, nil)
	nomadAddr := "NOMAD_ADDR=" + n.Addr
	seen := 0
	dispatched := func() []*api.Job { // the jobs the last run dispatched
		jobs := childJobs(t, n)
		defer func() { seen = len(jobs) }()
		return jobs[seen:]
	}

	t.Run("whole workflow", func(t *testing.T) {
		r := runDocCommand(t, 15*time.Minute, docCommand(t, "README.md", "bin/solstice run examples/hello.yml"), nomadAddr)
		checkHello(t, r, dispatched(), helloJobs, checkedOut, "the build says 42", "hello from a KDL job", "deploying to no region", "no TOKEN secret given")
	})
	t.Run("one job, one combination", func(t *testing.T) {
		r := runDocCommand(t, 10*time.Minute, docCommand(t, "README.md", "bin/solstice run --job build --matrix flavour=plain"), nomadAddr)
		checkHello(t, r, dispatched(), []string{"build (plain)"}, checkedOut, "building the plain flavour", "got PLAIN from the previous step")
		if strings.Contains(r.out, "fancy") {
			t.Errorf("the fancy combination ran too:\n%s", r.out)
		}
	})
	t.Run("secret and variable", func(t *testing.T) {
		const token = "tok-5ecret-Value-1618" // TOKEN from the environment, as the README's comment says
		r := runDocCommand(t, 10*time.Minute, docCommand(t, "README.md", "bin/solstice run --job deploy --secret TOKEN --var REGION=eu"), nomadAddr, "TOKEN="+token)
		checkHello(t, r, dispatched(), []string{"deploy"}, "deploying to eu", "signing in with ***")
		if strings.Contains(r.out, token) {
			t.Errorf("the secret's value shows in the output:\n%s", r.out)
		}
		vars, _, err := n.API.Variables().PrefixList(contract.SecretsPrefix, nil)
		if err != nil || len(vars) != 0 {
			t.Errorf("secrets Variables left after the run: %v (%v)", vars, err)
		}
	})
	t.Run("bundle on another address", func(t *testing.T) {
		// The doc runs examples/omnios.yml, a one-job workflow that needs a
		// client with the real OmniOS image: hello.yml's job build, one
		// combination, stands in for it on the test image (the whole of
		// hello.yml would cost the suite another 1.5 minutes, and prove
		// nothing more about where the bundle comes from).
		words := substitute(t, docCommand(t, "docs/getting-started.md", "solstice run --bundle-listen"),
			"10.0.0.5:7000", bundleAddr, "examples/omnios.yml", "examples/hello.yml")
		words = slices.Insert(words, len(words)-1, "--job", "build", "--matrix", "flavour=plain")
		r := runDocCommand(t, 10*time.Minute, words, nomadAddr)
		jobs := dispatched()
		checkHello(t, r, jobs, []string{"build (plain)"}, checkedOut, "building the plain flavour")
		for _, j := range jobs {
			if u := j.Meta[contract.MetaBundleURL]; !strings.HasPrefix(u, "http://"+bundleAddr+"/bundle/") {
				t.Errorf("job %s fetched its bundle from %q, not from --bundle-listen %s", *j.ID, u, bundleAddr)
			}
		}
	})
}

// checkedOut is the build job's step that finds the workflow in the checkout.
const checkedOut = "✓ Show where we are"

// checkHello checks a run of examples/hello.yml: exit 0, the jobs
// dispatched are want (by name, in order) and each succeeded in the
// closing summary, and the output shows lines (checkedOut among them for
// a run of the build job: its checkout held the workflow).
func checkHello(t *testing.T, r docRun, jobs []*api.Job, want []string, lines ...string) {
	t.Helper()
	var names []string
	for _, j := range jobs {
		names = append(names, j.Meta[contract.MetaJobName])
	}
	summary := summaryOf(r.out)
	failed := r.code != 0 || strings.Join(names, "|") != strings.Join(want, "|") || len(summary) != len(want)
	for _, name := range want {
		failed = failed || summary[name] != "success"
	}
	for _, l := range lines {
		failed = failed || !strings.Contains(r.out, l)
	}
	if failed {
		t.Fatalf("%s: exit %d, dispatched %q (want %q), summary %v, want lines %q in the output:\n%s", r.line, r.code, names, want, summary, lines, r.out)
	}
	var shown []string
	for _, l := range strings.Split(r.out, "\n") {
		if slices.ContainsFunc(lines, func(w string) bool { return strings.Contains(l, w) }) {
			shown = append(shown, l)
		}
	}
	t.Logf("%s: the lines looked for:\n%s\nand the summary:%s", r.line, strings.Join(shown, "\n"), tail(r.out, len(want)+2))
}

// childJobs lists the dispatched jobs in dispatch order.
func childJobs(t *testing.T, n *Nomad) []*api.Job {
	stubs, _, err := n.API.Jobs().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	var children []*api.JobListStub
	for _, s := range stubs {
		if s.ParentID != "" {
			children = append(children, s)
		}
	}
	sort.Slice(children, func(i, j int) bool { return children[i].CreateIndex < children[j].CreateIndex })
	var jobs []*api.Job
	for _, c := range children {
		job, _, err := n.API.Jobs().Info(c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	return jobs
}
