package nomad

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
)

func TestImageJob(t *testing.T) {
	targets := []ImageTarget{{NodeID: "0123456789abcdef", Node: "worker 3"}, {NodeID: "fedcba98", Node: "w4"}}
	job, err := ImageJob(ImagePull, "omnios-r151056", "ci", targets)
	if err != nil {
		t.Fatal(err)
	}
	if *job.Name != "solstice-image-pull-omnios-r151056" || !strings.HasPrefix(*job.ID, *job.Name+"-") || len(*job.ID) != len(*job.Name)+7 {
		t.Errorf("job name %q id %q", *job.Name, *job.ID)
	}
	if *job.Type != "batch" || *job.Namespace != "ci" || len(job.TaskGroups) != 2 {
		t.Fatalf("job type %q namespace %q with %d groups", *job.Type, *job.Namespace, len(job.TaskGroups))
	}
	g := job.TaskGroups[0]
	if *g.Name != "worker-3-01234567" || *job.TaskGroups[1].Name != "w4-fedcba98" {
		t.Errorf("group names %q, %q", *g.Name, *job.TaskGroups[1].Name)
	}
	if c := g.Constraints[0]; c.LTarget != "${node.unique.id}" || c.RTarget != "0123456789abcdef" || c.Operand != "=" {
		t.Errorf("constraint %+v", c)
	}
	if *g.RestartPolicy.Attempts != 0 || *g.ReschedulePolicy.Attempts != 0 || *g.ReschedulePolicy.Unlimited {
		t.Error("a failed pull must not be restarted or moved to another node")
	}
	task := g.Tasks[0]
	if task.Driver != "solstice-vm" || task.Config["image"] != "omnios-r151056" || task.Config["action"] != "pull" {
		t.Errorf("task %s config %v", task.Driver, task.Config)
	}
	other, _ := ImageJob(ImageVerify, "omnios-r151056", "", targets)
	if *other.ID == *job.ID || other.Namespace != nil || other.TaskGroups[0].Tasks[0].Config["action"] != "verify" {
		t.Errorf("a second job: id %q namespace %v", *other.ID, other.Namespace)
	}
}

func TestImageOutcome(t *testing.T) {
	driver := func(msg, detail string) *api.TaskEvent {
		return &api.TaskEvent{Type: "Driver", DriverMessage: msg, Details: map[string]string{"detail": detail}}
	}
	tests := []struct {
		name       string
		status     string
		events     []*api.TaskEvent
		done       bool
		outcome    string
		detailPart string
	}{
		{"running", "running", []*api.TaskEvent{driver("Downloading image: x: 1.0 MiB", "")}, false, "", ""},
		{"pulled", "complete", []*api.TaskEvent{driver("Fetching image", "f"), driver(msgImageCached, "image x is cached at /c/x.qcow2")}, true, "cached", "/c/x.qcow2"},
		{"verified", "complete", []*api.TaskEvent{driver(msgImageVerified, "image x at /c matches sha256 ab")}, true, "ok", "matches"},
		{"not cached", "complete", []*api.TaskEvent{driver(msgImageNotCached, "image x is not in this client's cache")}, true, "not cached", "not in"},
		{"mismatch", "failed", []*api.TaskEvent{{Type: api.TaskDriverFailure, DriverError: "rpc error: code = Unknown desc = the cached /c/x has sha256 1, the catalog wants 2"}}, true, "failed", "the cached /c/x"},
		{"lost", "lost", nil, true, "failed", "the allocation lost"},
		{"huge error", "failed", []*api.TaskEvent{{Type: api.TaskDriverFailure, DriverError: strings.Repeat("x", 5000)}}, true, "failed", "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := &api.TaskState{Events: tt.events}
			r, done := imageOutcome(&api.AllocationListStub{ClientStatus: tt.status}, ts)
			if done != tt.done || r.Outcome != tt.outcome || !strings.Contains(r.Detail, tt.detailPart) || len(r.Detail) > 700 {
				t.Fatalf("imageOutcome = %+v, %v; want %q containing %q, done %v", r, done, tt.outcome, tt.detailPart, tt.done)
			}
			if strings.Contains(r.Detail, "rpc error") {
				t.Errorf("the detail keeps gRPC's wrapping: %q", r.Detail)
			}
			if r.Failed() != (tt.outcome == "failed") {
				t.Errorf("Failed() = %v", r.Failed())
			}
		})
	}
}

func TestPlacementProblem(t *testing.T) {
	got := placementProblem(&api.AllocationMetric{NodesEvaluated: 1, ConstraintFiltered: map[string]int{"missing drivers": 1}})
	if got != "missing drivers (1)" {
		t.Errorf("placementProblem = %q", got)
	}
	if got := placementProblem(&api.AllocationMetric{}); got != "no node was eligible" {
		t.Errorf("placementProblem of nothing evaluated = %q", got)
	}
}
