package nomad

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// addJob adds a job as Nomad lists it.
func (f *fakeNomad) addJob(j *api.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[*j.ID] = j
}

func child(id, forge, instance, key, status string) *api.Job {
	return &api.Job{ID: ptr(id), ParentID: ptr("solstice-solstice-test"), Status: ptr(status), Stop: ptr(false),
		SubmitTime: ptr(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).UnixNano()),
		Meta: map[string]string{contract.MetaForge: forge, contract.MetaInstance: instance, contract.MetaTaskID: id,
			contract.MetaJobName: "build", contract.MetaSecretsKey: key}}
}

// planPayload is a dispatch payload: a compressed plan of n steps.
func planPayload(t *testing.T, n int) []byte {
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "build", Name: "build"}}
	for i := range n {
		p.Steps = append(p.Steps, contract.Step{Run: fmt.Sprintf("echo %d", i)})
	}
	var b bytes.Buffer
	if err := contract.EncodePlanCompressed(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A resumed job's step count comes from the plan in its payload.
func TestInFlight(t *testing.T) {
	f, c := newFakeNomad(t)
	f.addJob(child("solstice-solstice-test/dispatch-1", "forgejo", "https://forge#r", "k1", "running"))
	f.addJob(child("solstice-solstice-test/dispatch-2", "forgejo", "https://forge#r", "k2", "dead")) // finished: no secrets
	f.addJob(child("solstice-solstice-test/dispatch-3", "github", "https://github.com/o", "k3", "running"))
	f.addJob(child("solstice-solstice-test/dispatch-4", "forgejo", "https://forge#r", "k4", "pending"))
	f.addJob(&api.Job{ID: ptr("solstice-solstice-test"), ParameterizedJob: &api.ParameterizedJobConfig{},
		Meta: map[string]string{contract.MetaLabel: "solstice-test"}})
	// dispatch-1's plan has two steps; dispatch-4's payload is no plan.
	f.jobs["solstice-solstice-test/dispatch-1"].Payload = planPayload(t, 2)
	f.jobs["solstice-solstice-test/dispatch-4"].Payload = []byte("not a plan")
	for _, k := range []string{"k1", "k3", "k4"} {
		f.setVar(contract.SecretsPrefix+k, true)
	}
	f.take()
	jobs, err := c.InFlight(context.Background(), "forgejo", "https://forge#r")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	if want := []string{"solstice-solstice-test/dispatch-1", "solstice-solstice-test/dispatch-4"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("in flight: %v, want %v", ids, want)
	}
	got := f.take()
	sort.Strings(got)
	want := []string{"GET /v1/job/{id}", "GET /v1/job/{id}", "GET /v1/jobs", "GET /v1/var/{id}", "GET /v1/var/{id}", "GET /v1/var/{id}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	if jobs[0].Meta.Forge != "forgejo" || jobs[0].SecretsKey != "k1" || jobs[0].Label != "solstice-test" || jobs[0].Steps != 2 || jobs[1].Steps != 0 {
		t.Errorf("job %+v", jobs[0])
	}
	// The list's submit time is kept for the status reads.
	st := statusOnce(t, f, c, jobs[1], readAlls)
	if st.Stage != Queued || !st.Submitted.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("status %+v", st)
	}
}

func TestCatalog(t *testing.T) {
	f, c := newFakeNomad(t)
	parent := func(id, label, aliases string) *api.Job {
		return &api.Job{ID: ptr(id), ParameterizedJob: &api.ParameterizedJobConfig{},
			Meta: map[string]string{contract.MetaLabel: label, contract.MetaAliases: aliases}}
	}
	f.addJob(parent("solstice-omnios-r151056", "omnios-r151056", "omnios, illumos"))
	f.addJob(parent("solstice-solstice-test", "solstice-test", ""))
	f.addJob(&api.Job{ID: ptr("solstice-old"), Stop: ptr(true), ParameterizedJob: &api.ParameterizedJobConfig{},
		Meta: map[string]string{contract.MetaLabel: "old"}})
	f.addJob(&api.Job{ID: ptr("solstice-shims")}) // no meta at all: read to be sure
	f.addJob(child("solstice-solstice-test/dispatch-1", "forgejo", "x", "k", "running"))
	f.take()
	cat, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"omnios-r151056": "omnios-r151056", "omnios": "omnios-r151056", "illumos": "omnios-r151056", "solstice-test": "solstice-test"}
	if !reflect.DeepEqual(cat, want) {
		t.Errorf("catalog %v", cat)
	}
	if got := f.take(); !reflect.DeepEqual(got, []string{"GET /v1/jobs", "GET /v1/job/{id}"}) {
		t.Errorf("requests %q", got)
	}
}
