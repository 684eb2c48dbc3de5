package forgejo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/cache"
	"github.com/solstice-ci/solstice/shim/nomad"
)

var testCatalog = map[string]string{"solstice-test": "solstice-test", "debian-test": "solstice-test"}

func testTask(t *testing.T, payload string, ctx map[string]any) *runnerv1.Task {
	t.Helper()
	base := map[string]any{
		"repository": "o/r", "sha": "abc", "ref": "refs/heads/main", "server_url": "http://10.210.1.2:3000",
		"run_id": "12", "token": "T0K3N", "gitea_runtime_token": "RT", "event": map[string]any{"ref": "refs/heads/main"},
	}
	for k, v := range ctx {
		base[k] = v
	}
	s, err := structpb.NewStruct(base)
	if err != nil {
		t.Fatal(err)
	}
	return &runnerv1.Task{Id: 9, WorkflowPayload: []byte(payload), Context: s,
		Secrets: map[string]string{"GITHUB_TOKEN": "T0K3N", "DEPLOY": "d3pl0y"},
		Vars:    map[string]string{"V": "1"},
		Needs:   map[string]*runnerv1.TaskNeed{"probe": {Outputs: map[string]string{"probe_out": "42"}, Result: runnerv1.Result_RESULT_SUCCESS}},
	}
}

const matrixLeg = `
name: CI
on: push
jobs:
  build:
    name: build (amd64, r151050)
    runs-on: debian-test
    strategy:
      matrix:
        arch: [amd64]
        rel: [r151050]
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ matrix.arch }} ${{ needs.probe.outputs.probe_out }} ${{ vars.V }}
`

func decodePlan(t *testing.T, payload []byte) *contract.Plan {
	t.Helper()
	p, err := contract.DecodePlanAuto(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepare(t *testing.T) {
	p, err := prepare(testTask(t, matrixLeg, nil), testCatalog, "http://forge#r", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := p.req
	if req.Label != "solstice-test" || p.steps != 2 {
		t.Fatalf("label %q, %d steps", req.Label, p.steps)
	}
	if req.Meta != (Meta{Forge: "forgejo", Instance: "http://forge#r", TaskID: "9", Repository: "o/r", Run: "12", JobName: "build (amd64, r151050)"}) {
		t.Fatalf("meta %+v", req.Meta)
	}
	if req.Secrets["DEPLOY"] != "d3pl0y" || bytes.Contains(req.Plan, []byte("d3pl0y")) {
		t.Fatal("secret values must go to the secret store only")
	}
	pl := decodePlan(t, req.Plan)
	var gh map[string]any
	if err := json.Unmarshal(pl.Contexts["github"], &gh); err != nil {
		t.Fatal(err)
	}
	if _, ok := gh["token"]; ok || gh["gitea_runtime_token"] != nil || gh["sha"] != "abc" {
		t.Fatalf("github context %v", gh)
	}
	var needs map[string]struct {
		Result  string
		Outputs map[string]string
	}
	json.Unmarshal(pl.Contexts["needs"], &needs)
	if needs["probe"].Result != "success" || needs["probe"].Outputs["probe_out"] != "42" {
		t.Fatalf("needs %s", pl.Contexts["needs"])
	}
	if *pl.Checkout != (contract.Checkout{URL: "http://10.210.1.2:3000/o/r.git", SHA: "abc", Ref: "refs/heads/main"}) {
		t.Fatalf("checkout %+v", pl.Checkout)
	}
	if req.Secrets["ACTIONS_RUNTIME_TOKEN"] != "RT" || bytes.Contains(req.Plan, []byte(`"RT"`)) {
		t.Fatalf("the runtime token must travel as a secret only: %v", req.Secrets)
	}
	if n := len(pl.Env); n == 0 || pl.Env[n-1] != (contract.EnvVar{Name: "ACTIONS_RESULTS_URL", Value: "http://10.210.1.2:3000"}) {
		t.Fatalf("job env %v lacks the results URL", pl.Env)
	}
	if strings.Join(pl.Secrets, ",") != "ACTIONS_RUNTIME_TOKEN,DEPLOY,GITHUB_TOKEN" || string(pl.Contexts["vars"]) != `{"V":"1"}` {
		t.Fatalf("secrets %v vars %s", pl.Secrets, pl.Contexts["vars"])
	}
}

// Meta is nomad.Meta, spelled short for the table above.
type Meta = nomad.Meta

func TestPrepareTrimsAHugeEvent(t *testing.T) {
	huge := map[string]any{"ref": "refs/heads/main", "commits": []any{}, "head_commit": map[string]any{"id": "abc", "message": "m"}}
	var commits []any
	for i := range 1000 {
		id := make([]byte, 20)
		rand.Read(id)
		commits = append(commits, map[string]any{"id": hex.EncodeToString(id), "n": float64(i)})
	}
	huge["commits"] = commits
	p, err := prepare(testTask(t, matrixLeg, map[string]any{"event": huge}), testCatalog, "i", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gh struct{ Event map[string]any }
	json.Unmarshal(decodePlan(t, p.req.Plan).Contexts["github"], &gh)
	if gh.Event["ref"] != "refs/heads/main" || gh.Event["commits"] != nil || gh.Event["head_commit"].(map[string]any)["id"] != "abc" {
		t.Fatalf("event not trimmed: ref %v, head_commit %v, %d bytes of plan", gh.Event["ref"], gh.Event["head_commit"], len(p.req.Plan))
	}
}

func TestPrepareRefuses(t *testing.T) {
	tests := []struct {
		name, payload, want string
		steps               int
	}{
		{"action", strings.Replace(matrixLeg, "actions/checkout@v4", "some/action@v1", 1), "some/action@v1", 2},
		{"label", strings.Replace(matrixLeg, "debian-test", "ubuntu-latest", 1), `no catalog image has label "ubuntu-latest"`, 2},
		{"yaml", "jobs:\n  a: [\n", "did not find expected node content (YAML)", 0},
		{"container", strings.Replace(matrixLeg, "    steps:", "    container: alpine\n    steps:", 1), "container", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := prepare(testTask(t, tt.payload, nil), testCatalog, "i", nil, nil)
			var u *unrunnable
			if !errors.As(err, &u) || !strings.Contains(strings.Join(u.lines, "\n"), tt.want) || u.steps != tt.steps {
				t.Fatalf("prepare = %v (steps %v), want %q", err, u, tt.want)
			}
		})
	}
}

func TestPrepareGrantsCacheAccess(t *testing.T) {
	m, err := cache.NewMinter(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	ca := &CacheAccess{URL: "http://10.210.1.1:8088", Minter: m, TTL: time.Hour}
	p, err := prepare(testTask(t, matrixLeg, nil), testCatalog, "i", nil, ca)
	if err != nil {
		t.Fatal(err)
	}
	tok := p.req.Secrets["ACTIONS_CACHE_TOKEN"]
	if repo, err := m.Verify(tok); err != nil || repo != "o/r" {
		t.Fatalf("cache token for %q, %v", repo, err)
	}
	pl := decodePlan(t, p.req.Plan)
	if bytes.Contains(p.req.Plan, []byte(tok)) || !slices.Contains(pl.Secrets, "ACTIONS_CACHE_TOKEN") {
		t.Fatalf("the cache token must travel as a listed secret only: %v", pl.Secrets)
	}
	if !slices.Contains(pl.Env, contract.EnvVar{Name: "ACTIONS_CACHE_URL", Value: ca.URL}) {
		t.Fatalf("job env %v lacks the cache URL", pl.Env)
	}
}
