package nomad

import (
	"strings"
	"testing"

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
			st := statusOf(tt.alloc)
			if st.Stage != tt.wantStage || st.ExitCode != tt.wantCode || !strings.Contains(st.Problem, tt.wantProb) {
				t.Fatalf("statusOf = %v code %d problem %q", st.Stage, st.ExitCode, st.Problem)
			}
		})
	}
}
