package nomad

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

const (
	jobID    = "solstice-solstice-test/dispatch-1700000000-abcd1234"
	readJob  = "GET /v1/job/{id}"
	readAlls = "GET /v1/job/{id}/allocations"
)

// statusOnce reads the status and checks it cost exactly the one request.
func statusOnce(t *testing.T, f *fakeNomad, c *Client, job *Job, want string) Status {
	t.Helper()
	f.take()
	st, err := c.Status(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !reflect.DeepEqual(got, []string{want}) {
		t.Fatalf("Status made the requests %q, want exactly [%s]", got, want)
	}
	return st
}

// queuedReads reads a job without allocation until its probe is due.
func queuedReads(t *testing.T, f *fakeNomad, c *Client, job *Job) {
	t.Helper()
	for i := 1; i < probeEvery; i++ {
		if st := statusOnce(t, f, c, job, readAlls); st.Stage != Queued {
			t.Fatalf("queued read %d: %+v", i, st)
		}
	}
}

func taskState(state string, events ...*api.TaskEvent) map[string]*api.TaskState {
	return map[string]*api.TaskState{contract.TaskName: {State: state, Events: events}}
}

// A job's life, read by Status at every stage: one request per read.
func TestStatusIsOneRequestPerRead(t *testing.T) {
	f, c := newFakeNomad(t)
	submit := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	placed := submit.Add(7 * time.Second)
	job := f.dispatched(jobID, submit.UnixNano())
	job.learned.fromJob(submit.UnixNano(), false) // as Dispatch does

	queuedReads(t, f, c, job)
	if st := statusOnce(t, f, c, job, readJob); st.Stage != Queued || !st.Submitted.Equal(submit) {
		t.Fatalf("the probe of a queued job: %+v", st)
	}
	statusOnce(t, f, c, job, readAlls)

	alloc := &api.AllocationListStub{ID: "a1b2c3d4-0000", NodeID: "node-id-1", NodeName: "client-1",
		ClientStatus: "pending", CreateIndex: 10, CreateTime: placed.UnixNano()}
	f.setAlloc(jobID, "running", alloc)
	st := statusOnce(t, f, c, job, readAlls)
	if st.Stage != Booting || st.AllocID != alloc.ID || st.NodeID != "node-id-1" || st.Node != "client-1" ||
		!st.Placed.Equal(placed) || !st.Submitted.Equal(submit) {
		t.Fatalf("booting: %+v", st)
	}

	booting := &api.TaskEvent{Type: "Driver", DriverMessage: "Booting", Details: map[string]string{"detail": "image solstice-test under tcg, ssh on 127.0.0.1:2222"}}
	alloc.ClientStatus, alloc.TaskStates = "running", taskState("running", booting)
	f.setAlloc(jobID, "running", alloc)
	for i := 0; i < 2*probeEvery; i++ { // placed: no more probes
		if st = statusOnce(t, f, c, job, readAlls); st.Stage != Running || st.Boot != booting.Details["detail"] {
			t.Fatalf("running: %+v", st)
		}
	}

	alloc.ClientStatus = "failed"
	alloc.TaskStates = taskState("dead", booting, &api.TaskEvent{Type: api.TaskTerminated, ExitCode: contract.ExitJobFailed})
	f.setAlloc(jobID, "dead", alloc)
	st = statusOnce(t, f, c, job, readAlls)
	if st.Stage != Finished || st.ExitCode != contract.ExitJobFailed || st.Problem != "" || !st.Submitted.Equal(submit) {
		t.Fatalf("finished: %+v", st)
	}
}

// A job read once, long after it finished, reads finished.
func TestStatusFirstReadOfAFinishedJob(t *testing.T) {
	f, c := newFakeNomad(t)
	job := f.dispatched(jobID, time.Now().UnixNano())
	f.setAlloc(jobID, "dead", &api.AllocationListStub{ID: "a1", ClientStatus: "complete",
		TaskStates: taskState("dead", &api.TaskEvent{Type: api.TaskTerminated, ExitCode: 0})})
	if st := statusOnce(t, f, c, job, readAlls); st.Stage != Finished || st.ExitCode != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestStatusCancelledBeforePlacement(t *testing.T) {
	f, c := newFakeNomad(t)
	job := f.dispatched(jobID, time.Now().UnixNano())
	statusOnce(t, f, c, job, readAlls)
	if err := c.Cancel(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st := statusOnce(t, f, c, job, readAlls)
	if st.Stage != Finished || st.ExitCode != contract.ExitCancelled || st.Problem != "cancelled before it was placed" {
		t.Fatalf("stopped: %+v", st)
	}
}

// Someone else stops a queued job: the next probe notices.
func TestStatusStoppedByOthers(t *testing.T) {
	f, c := newFakeNomad(t)
	job := f.dispatched(jobID, time.Now().UnixNano())
	f.stop(jobID)
	queuedReads(t, f, c, job)
	statusOnce(t, f, c, job, readJob)
	if st := statusOnce(t, f, c, job, readAlls); st.Stage != Finished || st.ExitCode != contract.ExitCancelled {
		t.Fatalf("stopped: %+v", st)
	}
}

func TestStatusPurged(t *testing.T) {
	f, c := newFakeNomad(t)
	job := f.dispatched(jobID, time.Now().UnixNano())
	f.purge(jobID)
	queuedReads(t, f, c, job)
	if st := statusOnce(t, f, c, job, readJob); st.Stage != Finished || st.Problem != Purged.Problem {
		t.Fatalf("purged while queued: %+v", st)
	}
	// Placed, then purged and garbage-collected: no allocation is left.
	job = f.dispatched(jobID, time.Now().UnixNano())
	f.setAlloc(jobID, "running", &api.AllocationListStub{ID: "a1"})
	statusOnce(t, f, c, job, readAlls)
	f.mu.Lock()
	delete(f.allocs, jobID)
	f.mu.Unlock()
	if st := statusOnce(t, f, c, job, readAlls); st.Stage != Finished || st.Problem != Purged.Problem {
		t.Fatalf("collected after placement: %+v", st)
	}
}

// The newest allocation decides.
func TestStatusNewestAllocation(t *testing.T) {
	f, c := newFakeNomad(t)
	job := f.dispatched(jobID, time.Now().UnixNano())
	f.setAlloc(jobID, "running", &api.AllocationListStub{ID: "old", CreateIndex: 5})
	f.mu.Lock()
	f.allocs[jobID] = append(f.allocs[jobID], &api.AllocationListStub{ID: "new", CreateIndex: 9}, &api.AllocationListStub{ID: "mid", CreateIndex: 7})
	f.mu.Unlock()
	if st := statusOnce(t, f, c, job, readAlls); st.AllocID != "new" {
		t.Fatalf("status of allocation %q", st.AllocID)
	}
}

// A task whose template waits for a Variable it cannot read is stuck once
// Nomad has reported it missing for templateGrace; not before, and not a
// task that started after all.
func TestMissingTemplate(t *testing.T) {
	now := time.Unix(1700000000, 0)
	missing := func(age time.Duration) *api.TaskEvent {
		return &api.TaskEvent{Type: "Template", Time: now.Add(-age).UnixNano(),
			DisplayMessage: "Missing: nomad.var.block(solstice/secrets/k@ci.global)"}
	}
	tests := []struct {
		name   string
		events []*api.TaskEvent
		stuck  bool
	}{
		{"no events", nil, false},
		{"missing just now", []*api.TaskEvent{missing(2 * time.Second)}, false},
		{"missing for long", []*api.TaskEvent{missing(time.Minute)}, true},
		{"newest missing event decides", []*api.TaskEvent{missing(time.Minute), missing(time.Second)}, false},
		{"other template event", []*api.TaskEvent{{Type: "Template", Time: now.Add(-time.Minute).UnixNano(), DisplayMessage: "Template failed: x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, stuck := missingTemplate(&api.TaskState{State: "pending", Events: tt.events}, now)
			if stuck != tt.stuck {
				t.Fatalf("stuck = %v, want %v (%q)", stuck, tt.stuck, msg)
			}
			if stuck && !strings.Contains(msg, "nomad.var.block(solstice/secrets/k@ci.global)") {
				t.Errorf("problem %q does not name the missing Variable", msg)
			}
		})
	}
}

func TestDownloadMessage(t *testing.T) {
	driver := func(msg string) *api.TaskEvent { return &api.TaskEvent{Type: "Driver", DriverMessage: msg} }
	tests := []struct {
		name string
		ts   *api.TaskState
		want string
	}{
		{"no task state", nil, ""},
		{"no download", &api.TaskState{Events: []*api.TaskEvent{driver("Fetching image"), driver("Booting")}}, ""},
		{"latest progress", &api.TaskState{Events: []*api.TaskEvent{
			driver("Downloading image: img: 1.0 MiB of 10.0 MiB (10%), 1.0 MiB/s"),
			driver("Downloading image: img: 5.0 MiB of 10.0 MiB (50%), 2.0 MiB/s"),
			{Type: "Received"},
		}}, "img: 5.0 MiB of 10.0 MiB (50%), 2.0 MiB/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := downloadMessage(tt.ts); got != tt.want {
				t.Errorf("downloadMessage = %q, want %q", got, tt.want)
			}
		})
	}
}

// A stuck task's status names the parent job's missing policy.
func TestStatusStuckNamesThePolicy(t *testing.T) {
	f, c := newFakeNomad(t)
	ts := &api.TaskState{State: "pending", Events: []*api.TaskEvent{{Type: "Template",
		Time: time.Now().Add(-time.Minute).UnixNano(), DisplayMessage: "Missing: nomad.var.block(solstice/secrets/k@default.global)"}}}
	f.allocs[jobID] = []*api.AllocationListStub{{ID: "a1", NodeID: "n1", ClientStatus: "pending", TaskStates: map[string]*api.TaskState{contract.TaskName: ts}}}
	st := statusOnce(t, f, c, &Job{ID: jobID, Label: "solstice-test"}, readAlls)
	if !st.Stuck || st.Stage == Finished {
		t.Fatalf("status %+v, want stuck and not finished", st)
	}
	for _, want := range []string{"solstice/secrets/k", "solstice-solstice-test", "solstice jobs sync"} {
		if !strings.Contains(st.Problem, want) {
			t.Errorf("problem %q lacks %q", st.Problem, want)
		}
	}
}

func TestMissingHint(t *testing.T) {
	tests := []struct{ problem, want, not string }{
		{"(Missing: nomad.var.block(solstice/secrets/k@ci.global))", "needs an ACL policy granting read", "may not read it"},
		{"(Missing: nomad.var.block(ops/db@ci.global))", "may not read it", "needs an ACL policy"},
		{"(Missing: nomad.var.block(ops/db@ci.global), nomad.var.block(solstice/secrets/k@ci.global))", "needs an ACL policy", "may not read it"},
	}
	for _, tt := range tests {
		got := missingHint(tt.problem, "solstice-x")
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) || !strings.Contains(got, "solstice-x") {
			t.Errorf("missingHint(%q) = %q, want %q and not %q", tt.problem, got, tt.want, tt.not)
		}
	}
}
