package nomad

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// An allocation Nomad took off its node ends the job as an infrastructure
// failure naming the node, whatever replacement Nomad placed after it.
func TestStatusOfDisplacedAllocations(t *testing.T) {
	running := map[string]*api.TaskState{contract.TaskName: {State: "running"}}
	lost := &api.AllocationListStub{ID: "lost", NodeID: "9f1c2d3e-node", NodeName: "client-b", ClientStatus: api.AllocClientStatusLost,
		DesiredStatus: api.AllocDesiredStatusStop, DesiredDescription: "alloc is lost since its node is down", CreateIndex: 5, TaskStates: running}
	migrated := &api.AllocationListStub{ID: "migrated", NodeID: "7a7a-node", NodeName: "client-c", ClientStatus: api.AllocClientStatusComplete,
		DesiredStatus: api.AllocDesiredStatusStop, DesiredDescription: allocMigrating, CreateIndex: 5,
		TaskStates: map[string]*api.TaskState{contract.TaskName: {State: "dead", Events: []*api.TaskEvent{{Type: api.TaskKilled}}}}}
	stoppedByUser := &api.AllocationListStub{ID: "stopped", NodeName: "client-a", ClientStatus: api.AllocClientStatusComplete,
		DesiredStatus: api.AllocDesiredStatusStop, DesiredDescription: "alloc not needed due to job update", CreateIndex: 5,
		TaskStates: map[string]*api.TaskState{contract.TaskName: {State: "dead", Events: []*api.TaskEvent{{Type: api.TaskKilled}}}}}
	replacement := &api.AllocationListStub{ID: "replacement", NodeName: "client-a", ClientStatus: "pending", CreateIndex: 9}
	tests := []struct {
		name      string
		allocs    []*api.AllocationListStub
		wantAlloc string
		displaced bool
		code      int
		problem   []string
	}{
		{"lost node", []*api.AllocationListStub{lost}, "lost", true, contract.ExitInfrastructure, []string{`"client-b"`, "9f1c2d3e-node", "lost", "not re-run"}},
		{"lost node, replacement placed", []*api.AllocationListStub{replacement, lost}, "lost", true, contract.ExitInfrastructure, []string{`"client-b"`, "lost"}},
		{"drained past its deadline", []*api.AllocationListStub{migrated, replacement}, "migrated", true, contract.ExitInfrastructure, []string{`"client-c"`, "7a7a-node", "draining"}},
		{"stopped by someone", []*api.AllocationListStub{stoppedByUser}, "stopped", false, contract.ExitCancelled, nil},
		{"newest decides otherwise", []*api.AllocationListStub{stoppedByUser, replacement}, "replacement", false, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := statusOfAllocs(append([]*api.AllocationListStub(nil), tt.allocs...))
			if st.AllocID != tt.wantAlloc || st.Displaced != tt.displaced || st.ExitCode != tt.code {
				t.Fatalf("status %+v, want alloc %s displaced %v code %d", st, tt.wantAlloc, tt.displaced, tt.code)
			}
			if tt.displaced && st.Stage != Finished {
				t.Fatalf("a displaced job is %s, want finished", st.Stage)
			}
			for _, want := range tt.problem {
				if !strings.Contains(st.Problem, want) {
					t.Errorf("problem %q lacks %q", st.Problem, want)
				}
			}
			if out := Outcome(nil, st); tt.displaced && (out.Code != contract.ExitInfrastructure || out.Problem != st.Problem) {
				t.Errorf("outcome %+v", out)
			}
		})
	}
}

// displacedJobs is a job whose node died mid-job: its events stream
// never ends, and the tracker must stop the Nomad job by itself.
type displacedJobs struct {
	Jobs
	mu        sync.Mutex
	cancelled int
}

func (d *displacedJobs) Status(context.Context, *Job) (Status, error) {
	return Status{Stage: Finished, AllocID: "a1", Node: "client-b", NodeID: "n-2", ExitCode: contract.ExitInfrastructure,
		Problem: `the Nomad client node "client-b" (ID n-2) running the job was lost`, Displaced: true}, nil
}

func (d *displacedJobs) Follow(ctx context.Context, _ Status, _ int64, _ func([]byte, int64) error) error {
	<-ctx.Done() // a dead node's stream never says anything again
	return ctx.Err()
}

func (d *displacedJobs) Cancel(context.Context, *Job) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cancelled++
	return nil
}

// A displaced job is given up at once (no wait for its last event) and
// its Nomad job stopped exactly once, so Nomad's replacement never runs.
func TestTrackerStopsADisplacedJob(t *testing.T) {
	d := &displacedJobs{}
	tr := &Tracker{Nomad: d, Job: &Job{ID: jobID}, Log: hclog.NewNullLogger(),
		Timing: Timing{Status: 10 * time.Millisecond, NoEvent: time.Hour, EndWait: time.Hour, RetryMin: time.Millisecond, RetryMax: time.Millisecond}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Follow(ctx, func(context.Context, contract.Event) error { return nil }); err != nil {
		t.Fatalf("follow: %v", err)
	}
	st, err := tr.WaitEnd(ctx)
	if err != nil || !st.Displaced {
		t.Fatalf("wait end: %+v, %v", st, err)
	}
	if d.cancelled != 1 {
		t.Fatalf("the Nomad job was stopped %d times, want once", d.cancelled)
	}
}
