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

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{Forge: "forgejo", Instance: "https://forge", TaskID: "42", Repository: "o/r", Run: "7", JobName: "build"}
	nm := m.nomad("k")
	if got := metaFrom(nm); got != m || nm[contract.MetaSecretsKey] != "k" {
		t.Fatalf("metaFrom(nomad(m)) = %+v", got)
	}
	if err := (Meta{Forge: "x"}).validate(); err == nil || !strings.Contains(err.Error(), "instance, task id, job name") {
		t.Fatalf("validate = %v", err)
	}
}

func TestIDPrefix(t *testing.T) {
	if got := idPrefix(Meta{Forge: "github", TaskID: "run/7 job:1"}); got != "github-run-7-job-1" {
		t.Fatalf("idPrefix = %q", got)
	}
}

func TestStatusOf(t *testing.T) {
	event := func(typ string, code int) *api.TaskEvent {
		return &api.TaskEvent{Type: typ, ExitCode: code, DisplayMessage: typ + " happened"}
	}
	tests := []struct {
		name      string
		alloc     *api.AllocationListStub
		wantStage Stage
		wantCode  int
		wantProb  string
	}{
		{"placed, no task state", &api.AllocationListStub{ClientStatus: "pending"}, Booting, 0, ""},
		{"running", &api.AllocationListStub{TaskStates: map[string]*api.TaskState{contract.TaskName: {State: "running"}}}, Running, 0, ""},
		{"job failed", &api.AllocationListStub{TaskStates: map[string]*api.TaskState{contract.TaskName: {State: "dead", Events: []*api.TaskEvent{event(api.TaskTerminated, 1)}}}}, Finished, 1, ""},
		{"boot failure", &api.AllocationListStub{TaskStates: map[string]*api.TaskState{contract.TaskName: {State: "dead", Failed: true, Events: []*api.TaskEvent{event(api.TaskDriverFailure, 0)}}}}, Finished, 3, "Driver Failure happened"},
		{"lost node", &api.AllocationListStub{ClientStatus: api.AllocClientStatusLost}, Finished, 3, "lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := statusOfAllocs([]*api.AllocationListStub{tt.alloc})
			if st.Stage != tt.wantStage || st.ExitCode != tt.wantCode || !strings.Contains(st.Problem, tt.wantProb) {
				t.Fatalf("statusOf = %v code %d problem %q", st.Stage, st.ExitCode, st.Problem)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	f, c := newFakeNomad(t)
	f.addJob(&api.Job{ID: ptr("solstice-solstice-test"), ParameterizedJob: &api.ParameterizedJobConfig{}})
	req := Request{Label: "solstice-test", Plan: []byte("plan"), Secrets: map[string]string{"S": "v"},
		Meta: Meta{Forge: "forgejo", Instance: "https://forge#r", TaskID: "42", JobName: "build"}}
	f.take()
	job, err := c.Dispatch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !reflect.DeepEqual(got, []string{"PUT /v1/var/{id}", "PUT /v1/job/{id}/dispatch", readJob}) {
		t.Errorf("requests %q", got)
	}
	f.mu.Lock()
	if !f.vars[contract.SecretsPrefix+job.SecretsKey] || f.jobs[job.ID].Meta[contract.MetaSecretsKey] != job.SecretsKey {
		t.Errorf("secrets not stored under the job's key %q", job.SecretsKey)
	}
	f.mu.Unlock()
	// The submit time Dispatch read is Nomad's, and the status has it.
	if st := statusOnce(t, f, c, job, readAlls); !st.Submitted.Equal(time.Unix(0, 1_700_000_000_000_000_000)) {
		t.Errorf("submitted %v", st.Submitted)
	}
	// A refused dispatch takes its secrets back.
	req.Label = "unknown"
	if _, err := c.Dispatch(context.Background(), req); err == nil {
		t.Fatal("dispatched to a parent job that does not exist")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.vars) != 1 {
		t.Errorf("the refused dispatch left its secrets: %v", f.vars)
	}
}
