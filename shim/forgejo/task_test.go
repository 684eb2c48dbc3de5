package forgejo

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
)

// expectedRows renders a finished fake job from scratch, as a restarted
// shim would: the rows the forge must hold, exactly.
func expectedRows(t *testing.T, n *fakeNomad, id string) []string {
	t.Helper()
	fj := n.state(id)
	st, err := n.Status(t.Context(), fj.job)
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal(0)
	r := newRenderer(j)
	r.dispatched(fj.job, st)
	if st.AllocID != "" {
		r.placed(st)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(fj.data)), "\n") {
		if line == "" {
			continue
		}
		ev, err := contract.DecodeEvent([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		r.event(ev, st)
	}
	r.finished(fj.job, st, time.Now())
	var out []string
	for _, row := range j.pending {
		out = append(out, row.Content)
	}
	return out
}

func manyLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("line %04d", i)
	}
	return out
}

func TestTaskRunsAndReports(t *testing.T) {
	e := newEnv(t)
	s := script{
		steps: []scriptStep{
			{name: "hello", lines: []string{"hello"}},
			{name: "fails", lines: []string{"about to fail"}, exit: 2},
			{name: "later", skip: true},
		},
		outputs: map[string]string{"v": "42"},
	}
	e.nomad.auto = s.play(60 * time.Millisecond) // slower than a heartbeat
	e.start()
	id := e.forge.push(goodJob+"      - run: echo later\n", "solstice-test")
	ft := e.forge.waitDone(t, id, 10*time.Second)

	if ft.result != runnerv1.Result_RESULT_FAILURE {
		t.Fatalf("result %v, want failure", ft.result)
	}
	jobID := e.nomad.job(0).job.ID
	want := expectedRows(t, e.nomad, jobID)
	t.Logf("the forge log:\n%s", strings.Join(want, "\n"))
	if got := e.forge.lines(id); !slices.Equal(got, want) {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range []string{"Queued: the job waits", "Placed on Nomad node node-1", "VM up", "hello", "Process completed with exit code 2.", `: step "fails" failed with exit code 2`, "Cleaning up: Nomad job"} {
		if !slices.ContainsFunc(want, func(s string) bool { return strings.Contains(s, l) }) {
			t.Errorf("no row with %q", l)
		}
	}
	wantSteps := []runnerv1.Result{runnerv1.Result_RESULT_SUCCESS, runnerv1.Result_RESULT_FAILURE, runnerv1.Result_RESULT_SKIPPED}
	for i, w := range wantSteps {
		s := ft.steps[int64(i)]
		if s == nil || s.Result != w || s.StartedAt == nil || s.StoppedAt == nil {
			t.Fatalf("step %d = %v, want %v with times", i, s, w)
		}
	}
	// Step 0's rows are exactly "hello".
	if s0 := ft.steps[0]; s0.LogLength != 1 || want[s0.LogIndex] != "hello" {
		t.Fatalf("step 0 rows [%d,+%d) = %q", s0.LogIndex, s0.LogLength, want[s0.LogIndex])
	}
	if ft.outputs["v"] != "42" {
		t.Fatalf("outputs %v", ft.outputs)
	}
	waitFor(t, 5*time.Second, "nomad Finish after the final report", func() bool { return e.nomad.state(jobID).finished })
	if ft.stopped.IsZero() || ft.beats == 0 {
		t.Fatalf("stopped_at %v, %d heartbeats", ft.stopped, ft.beats)
	}
}

func TestDispatchedPlan(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.forge.push(goodJob, "solstice-test")
	waitFor(t, 5*time.Second, "a dispatch", func() bool { return e.nomad.dispatched() == 1 })
	req := e.nomad.job(0).req
	if req.Label != "solstice-test" || req.Secrets["MY_SECRET"] != "hunter2" || req.Meta.Forge != "forgejo" || req.Meta.Instance != Instance(e.forge.URL(), "shim-1") || req.Meta.Repository != "o/r" {
		t.Fatalf("request %+v", req)
	}
	p, err := contract.DecodePlanAuto(strings.NewReader(string(req.Plan)))
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Contexts["github"]) == "" || strings.Contains(string(p.Contexts["github"]), "SECRET-TOKEN") || strings.Contains(string(req.Plan), "hunter2") {
		t.Fatalf("a secret value is in the plan: %s", p.Contexts["github"])
	}
	if p.Checkout == nil || p.Checkout.URL != "http://forge.invalid/o/r.git" || p.Checkout.SHA != "0123abcd" {
		t.Fatalf("checkout %+v", p.Checkout)
	}
	if !slices.Equal(p.Secrets, []string{"ACTIONS_RUNTIME_TOKEN", "GITEA_TOKEN", "GITHUB_TOKEN", "MY_SECRET"}) || req.Secrets["ACTIONS_RUNTIME_TOKEN"] != "RUNTIME" {
		t.Fatalf("secret names %v", p.Secrets)
	}
}

func TestUnrunnableTasksFailAtOnce(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		runsOn   string
		refuse   error
		want     string
		dispatch int
	}{
		{"unsupported action", strings.Replace(goodJob, "- run: echo world", "- uses: some/action@v1", 1), "solstice-test", nil, "some/action@v1", 0},
		{"unknown label", strings.Replace(goodJob, "runs-on: solstice-test", "runs-on: windows-2022", 1), "windows-2022", nil, `no catalog image has label "windows-2022"`, 0},
		{"invalid YAML", "jobs: [\n", "solstice-test", nil, "The job cannot run on Solstice", 0},
		{"dispatch refused", goodJob, "solstice-test", errors.New(`parameterized job "solstice-solstice-test" not found`), "Nomad did not take it", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.nomad.refuse = tt.refuse
			e.start(func(c *Config) { c.Labels = []string{"solstice-test", "windows-2022"} })
			start := time.Now()
			id := e.forge.push(tt.payload, tt.runsOn)
			ft := e.forge.waitDone(t, id, 5*time.Second)
			t.Logf("failed after %s", time.Since(start))
			if ft.result != runnerv1.Result_RESULT_FAILURE {
				t.Fatalf("result %v", ft.result)
			}
			lines := e.forge.lines(id)
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, tt.want) }) {
				t.Fatalf("no row with %q in\n%s", tt.want, strings.Join(lines, "\n"))
			}
			if e.nomad.dispatched() != tt.dispatch {
				t.Fatalf("%d jobs dispatched", e.nomad.dispatched())
			}
			for i, s := range ft.steps {
				if s.Result == runnerv1.Result_RESULT_UNSPECIFIED {
					t.Fatalf("step %d left open", i)
				}
			}
		})
	}
}

func TestTasksVersion(t *testing.T) {
	e := newEnv(t)
	e.start()
	waitFor(t, 5*time.Second, "idle polls", func() bool { return e.forge.count("FetchTask") >= 4 })
	e.forge.push(goodJob, "solstice-test")
	waitFor(t, 5*time.Second, "a dispatch", func() bool { return e.nomad.dispatched() == 1 })
	waitFor(t, 5*time.Second, "more polls", func() bool { return e.forge.count("FetchTask") >= 8 })
	e.forge.mu.Lock()
	fetched, picks := slices.Clone(e.forge.fetched), e.forge.picks
	e.forge.mu.Unlock()
	// 0 first; then the version the forge sent (no DB query) until a push
	// raises it and the stale version gets the task; then 0 again (query at
	// once), then the new version.
	k := slices.Index(fetched[1:], 0) + 1
	if fetched[0] != 0 || k < 2 || slices.ContainsFunc(fetched[1:k], func(v int64) bool { return v != 1 }) ||
		len(fetched) < k+2 || slices.ContainsFunc(fetched[k+1:], func(v int64) bool { return v != 2 }) {
		t.Fatalf("tasks_version sent: %v", fetched)
	}
	if picks > 3 {
		t.Fatalf("%d FetchTask calls queried for tasks; idle polls must not", picks)
	}
}

func TestCapacity(t *testing.T) {
	e := newEnv(t)
	e.start(func(c *Config) { c.Capacity = 2 })
	ids := []int64{}
	for range 4 {
		ids = append(ids, e.forge.push(goodJob, "solstice-test"))
	}
	waitFor(t, 5*time.Second, "two dispatches", func() bool { return e.nomad.dispatched() == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := e.nomad.dispatched(); n != 2 {
		t.Fatalf("%d jobs in flight with capacity 2", n)
	}
	// The queued tasks say so in the forge log at once.
	waitFor(t, 5*time.Second, "the queued line", func() bool {
		return slices.ContainsFunc(e.forge.lines(ids[0]), func(l string) bool { return strings.HasPrefix(l, "Queued:") })
	})
	// One ends: the next task is fetched.
	j := e.nomad.job(0)
	e.nomad.place(j.job.ID)
	e.nomad.emit(j.job.ID, script{steps: []scriptStep{{name: "a", lines: []string{"x"}}, {name: "b"}}}.events()...)
	e.nomad.end(j.job.ID, contract.ExitSuccess)
	waitFor(t, 5*time.Second, "a third dispatch", func() bool { return e.nomad.dispatched() == 3 })
	time.Sleep(100 * time.Millisecond)
	if n := e.nomad.dispatched(); n != 3 {
		t.Fatalf("%d jobs dispatched, want 3", n)
	}
}

func TestCancelFromTheForge(t *testing.T) {
	tests := []struct {
		name  string
		place bool
	}{
		{"while running", true},
		{"while queued", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.start()
			id := e.forge.push(goodJob, "solstice-test")
			waitFor(t, 5*time.Second, "a dispatch", func() bool { return e.nomad.dispatched() == 1 })
			jobID := e.nomad.job(0).job.ID
			if tt.place {
				e.nomad.place(jobID)
				e.nomad.emit(jobID, script{steps: []scriptStep{{name: "long", lines: []string{"working"}}, {name: "b"}}}.events()[:3]...)
				waitFor(t, 5*time.Second, "the step's output", func() bool { return slices.Contains(e.forge.lines(id), "working") })
			}
			e.forge.cancel(id)
			waitFor(t, 5*time.Second, "the Nomad job stopped", func() bool { return e.nomad.state(jobID).cancelled })
			ft := e.forge.waitDone(t, id, 5*time.Second)
			waitFor(t, 5*time.Second, "clean-up", func() bool { return e.nomad.state(jobID).finished })
			if ft.result != runnerv1.Result_RESULT_CANCELLED {
				t.Fatalf("result %v", ft.result)
			}
			if lines := e.forge.lines(id); !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Job cancelled") }) {
				t.Fatalf("rows:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}

func TestLogResendsAreDeduplicated(t *testing.T) {
	e := newEnv(t)
	e.forge.dropLogs = 3 // stored, but the runner never hears so
	s := script{steps: []scriptStep{{name: "chatty", lines: manyLines(1500)}, {name: "b"}}}
	e.nomad.auto = s.play(2 * time.Millisecond)
	e.start()
	id := e.forge.push(goodJob, "solstice-test")
	ft := e.forge.waitDone(t, id, 10*time.Second)
	want := expectedRows(t, e.nomad, e.nomad.job(0).job.ID)
	if got := e.forge.lines(id); !slices.Equal(got, want) {
		t.Fatalf("%d rows stored, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if ft.result != runnerv1.Result_RESULT_SUCCESS {
		t.Fatalf("result %v", ft.result)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestForgeOutageLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.start()
	id, jobID := e.pushPlaced(t)
	evs := script{steps: []scriptStep{{name: "a", lines: manyLines(300)}, {name: "b", lines: []string{"after the outage"}}}}.events()
	e.nomad.emit(jobID, evs[:100]...)
	waitFor(t, 5*time.Second, "rows", func() bool { return len(e.forge.lines(id)) > 50 })

	e.forge.setDown(true)
	e.nomad.emit(jobID, evs[100:]...)
	e.nomad.end(jobID, contract.ExitSuccess)
	time.Sleep(300 * time.Millisecond)
	if ok, why := e.forgeHealth(); ok || !strings.Contains(why, "forge unreachable") {
		t.Fatalf("healthy during the outage: %v %q", ok, why)
	}
	e.forge.setDown(false)

	ft := e.forge.waitDone(t, id, 10*time.Second)
	if want, got := expectedRows(t, e.nomad, jobID), e.forge.lines(id); !slices.Equal(got, want) {
		t.Fatalf("%d rows stored, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if ft.result != runnerv1.Result_RESULT_SUCCESS {
		t.Fatalf("result %v", ft.result)
	}
	if ok, why := e.forgeHealth(); !ok {
		t.Fatalf("unhealthy after the outage: %s", why)
	}
}

func (e *env) forgeHealth() (bool, string) { return e.lastRunner.rt.Metrics().Healthy() }

func TestRestartResumesAtTheForgesAck(t *testing.T) {
	e := newEnv(t)
	first := e.start()
	id, jobID := e.pushPlaced(t)
	evs := script{steps: []scriptStep{{name: "a", lines: manyLines(400)}, {name: "b", lines: []string{"done"}}}}.events()
	e.nomad.emit(jobID, evs[:200]...)
	waitFor(t, 5*time.Second, "rows", func() bool { return len(e.forge.lines(id)) > 150 })
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	// A request the stopped shim cancelled may still reach the handler.
	time.Sleep(100 * time.Millisecond)
	stored, received := len(e.forge.lines(id)), e.forge.snapshot(id).received

	// While no shim runs, the job goes on and ends.
	e.nomad.emit(jobID, evs[200:]...)
	e.nomad.end(jobID, contract.ExitSuccess)
	e.start()
	ft := e.forge.waitDone(t, id, 10*time.Second)
	want := expectedRows(t, e.nomad, jobID)
	if got := e.forge.lines(id); !slices.Equal(got, want) {
		t.Fatalf("%d rows stored (%d before the restart), want %d; first difference at %d", len(got), stored, len(want), firstDiff(got, want))
	}
	if sent := ft.received - received; sent != len(want)-stored {
		t.Fatalf("the restarted shim sent %d rows; want only the %d the forge lacked", sent, len(want)-stored)
	}
	if ft.result != runnerv1.Result_RESULT_SUCCESS || e.forge.count("Register") != 1 {
		t.Fatalf("result %v, %d registrations", ft.result, e.forge.count("Register"))
	}
	if n := e.nomad.dispatched(); n != 1 {
		t.Fatalf("%d dispatches", n)
	}
}

func TestJobThatDiesWithoutItsLastEvent(t *testing.T) {
	e := newEnv(t)
	e.start()
	id, jobID := e.pushPlaced(t)
	e.nomad.emit(jobID, script{steps: []scriptStep{{name: "a", lines: []string{"x"}}, {name: "b"}}}.events()[:3]...)
	e.nomad.mu.Lock()
	e.nomad.jobs[jobID].problem = "the Nomad client running the job was lost"
	e.nomad.mu.Unlock()
	e.nomad.end(jobID, contract.ExitInfrastructure)
	ft := e.forge.waitDone(t, id, 5*time.Second)
	if ft.result != runnerv1.Result_RESULT_FAILURE {
		t.Fatalf("result %v", ft.result)
	}
	lines := e.forge.lines(id)
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "client running the job was lost") }) {
		t.Fatalf("rows:\n%s", strings.Join(lines, "\n"))
	}
	if s := ft.steps[0]; s.Result != runnerv1.Result_RESULT_FAILURE {
		t.Fatalf("the running step ended %v", s.Result)
	}
}

func TestNomadDownStopsFetching(t *testing.T) {
	e := newEnv(t)
	e.nomad.setDown(true)
	r := e.start()
	waitFor(t, 5*time.Second, "unhealthy", func() bool {
		ok, why := r.rt.Metrics().Healthy()
		return !ok && strings.Contains(why, "nomad unreachable")
	})
	if n := e.forge.count("FetchTask"); n != 0 {
		t.Fatalf("%d FetchTask calls while Nomad is down", n)
	}
	e.nomad.setDown(false)
	waitFor(t, 5*time.Second, "polling", func() bool { return e.forge.count("FetchTask") > 0 })
}

// A hostile guest's forged line fails its job with a message saying
// what was wrong; it used to panic the shim (and every restart after).
func TestForgedEventFailsTheJob(t *testing.T) {
	e := newEnv(t)
	e.start()
	id, jobID := e.pushPlaced(t)
	e.nomad.emit(jobID, script{steps: []scriptStep{{name: "a", lines: []string{"x"}}, {name: "b"}}}.events()[:1]...)
	e.nomad.mu.Lock()
	at := len(e.nomad.jobs[jobID].data)
	e.nomad.jobs[jobID].data = append(e.nomad.jobs[jobID].data, `{"seq":9999,"type":"step_started","step":-1}`+"\n"...)
	e.nomad.touch()
	e.nomad.mu.Unlock()
	ft := e.forge.waitDone(t, id, 10*time.Second)
	if ft.result != runnerv1.Result_RESULT_FAILURE {
		t.Fatalf("result %v, want failure", ft.result)
	}
	want := fmt.Sprintf("the guest sent an invalid event at offset %d: step_started: step index -1", at)
	if lines := e.forge.lines(id); !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
		t.Fatalf("no row with %q in:\n%s", want, strings.Join(lines, "\n"))
	}
}

// A guest that claims more steps than the plan the shim dispatched is
// refused at its job_started: the count comes from the plan, not from the
// guest, so a forged step index past the plan never reaches the forge.
func TestForgedStepCountFailsTheJob(t *testing.T) {
	e := newEnv(t)
	e.start()
	id, jobID := e.pushPlaced(t)
	e.nomad.mu.Lock()
	e.nomad.jobs[jobID].data = append(e.nomad.jobs[jobID].data,
		`{"seq":1,"type":"job_started","steps":50}`+"\n"+`{"seq":2,"type":"step_started","step":40,"name":"forged"}`+"\n"...)
	e.nomad.touch()
	e.nomad.mu.Unlock()
	ft := e.forge.waitDone(t, id, 10*time.Second)
	if ft.result != runnerv1.Result_RESULT_FAILURE {
		t.Fatalf("result %v, want failure", ft.result)
	}
	want := "the guest sent an invalid event at offset 0: job_started: 50 steps, but the plan has 2"
	lines := e.forge.lines(id)
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
		t.Fatalf("no row with %q in:\n%s", want, strings.Join(lines, "\n"))
	}
	if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "forged") }) {
		t.Fatalf("the forged step reached the forge:\n%s", strings.Join(lines, "\n"))
	}
}

// pushPlaced queues goodJob in the forge and waits until the shim has
// dispatched it; Nomad then places it. It returns the forge's task id and
// the dispatched job's id.
func (e *env) pushPlaced(t *testing.T) (int64, string) {
	t.Helper()
	id := e.forge.push(goodJob, "solstice-test")
	waitFor(t, 5*time.Second, "a dispatch", func() bool { return e.nomad.dispatched() == 1 })
	jobID := e.nomad.job(0).job.ID
	e.nomad.place(jobID)
	return id, jobID
}
