package translate

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/workflow"
)

const wf = `
name: CI
env:
  WF: one
jobs:
  build:
    runs-on: solstice-test
    timeout-minutes: 30
    strategy:
      matrix:
        arch: [amd64, arm64]
    env:
      JOB: two
    outputs:
      v: ${{ steps.v.outputs.v }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - id: v
        name: Version
        run: echo "v=1" >> "$GITHUB_OUTPUT"
        shell: bash
        continue-on-error: true
        timeout-minutes: 5
        env:
          A: ${{ matrix.arch }}
      - name: Legacy
        uses: solstice-ci/kdl@v1
        with:
          path: .solstice/workflow.kdl
          job: illumos-build
`

func runs(t *testing.T) (*workflow.Workflow, []workflow.Run) {
	w, err := workflow.Parse([]byte(wf), "ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := w.Runs()
	if err != nil {
		t.Fatal(err)
	}
	return w, rs
}

func TestPlan(t *testing.T) {
	w, rs := runs(t)
	p, err := Plan(Input{
		Workflow: w, Run: rs[1],
		GitHub:   map[string]any{"repository": "o/r", "sha": "abc"},
		Secrets:  []string{"TOKEN", "GITHUB_TOKEN", "TOKEN"},
		Checkout: &contract.Checkout{SHA: "abc", Bundle: "/var/tmp/solstice/repo.bundle"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"job name", p.Job.Name, "build (arm64)"},
		{"workflow", p.Job.Workflow, "CI"},
		{"timeout", p.TimeoutMinutes, 30.0},
		{"env order", p.Env, []contract.EnvVar{{Name: "WF", Value: "one"}, {Name: "JOB", Value: "two"}}},
		{"secrets sorted, unique", strings.Join(p.Secrets, ","), "GITHUB_TOKEN,TOKEN"},
		{"checkout uses", p.Steps[0].Uses, "actions/checkout@v4"},
		{"checkout with", p.Steps[0].With["fetch-depth"], "0"},
		{"run", p.Steps[1].Run, `echo "v=1" >> "$GITHUB_OUTPUT"`},
		{"continue-on-error", p.Steps[1].ContinueOnError, contract.Scalar("true")},
		{"step timeout", p.Steps[1].TimeoutMinutes, contract.Scalar("5")},
		{"step env kept unevaluated", p.Steps[1].Env["A"], "${{ matrix.arch }}"},
		{"outputs", p.Outputs["v"], "${{ steps.v.outputs.v }}"},
		{"kdl step", p.Steps[2].KDL, &contract.KDL{Path: ".solstice/workflow.kdl", Job: "illumos-build"}},
		{"kdl step has no uses", p.Steps[2].Uses, ""},
		{"matrix context", string(p.Contexts["matrix"]), `{"arch":"arm64"}`},
		{"strategy context", string(p.Contexts["strategy"]), `{"fail-fast":true,"job-index":1,"job-total":2,"max-parallel":2}`},
	}
	for _, c := range checks {
		g, _ := json.Marshal(c.got)
		w, _ := json.Marshal(c.want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s = %s, want %s", c.what, g, w)
		}
	}
}

func TestEncodeRoundTripAndLimit(t *testing.T) {
	w, rs := runs(t)
	p, err := Plan(Input{Workflow: w, Run: rs[0], Checkout: &contract.Checkout{URL: "https://forge/o/r.git", SHA: "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := contract.EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := contract.DecodePlanAuto(bytes.NewReader(payload))
	if err != nil || back.Job.Name != p.Job.Name || len(back.Steps) != 3 {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Incompressible script text pushes the plan over the payload limit.
	random := make([]byte, 30000)
	rand.Read(random)
	p.Steps[1].Run = "echo " + hex.EncodeToString(random)
	if _, err := contract.EncodePayload(p); err == nil || !strings.Contains(err.Error(), "payload limit") {
		t.Fatalf("Encode of an oversized plan: %v", err)
	}
}

func TestJobTimeoutExpressionRefused(t *testing.T) {
	w, rs := runs(t)
	r := rs[0]
	r.TimeoutMinutes = workflow.NumberOrExpr{Expr: "${{ vars.T }}"}
	if _, err := Plan(Input{Workflow: w, Run: r, Checkout: &contract.Checkout{URL: "u"}}); err == nil || !strings.Contains(err.Error(), "timeout-minutes") {
		t.Fatalf("Plan = %v", err)
	}
}
