package nomad

import (
	"context"
	"reflect"
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
