package workflow

import (
	"reflect"
	"testing"
)

const fullWorkflow = `name: CI
on:
  push:
    branches: [main]
permissions: read-all
concurrency: ci-${{ github.ref }}
env:
  B: two
  A: 1
defaults:
  run:
    shell: bash
    working-directory: src
jobs:
  build:
    name: Build
    runs-on: [self-hosted, omnios-r151056]
    if: ${{ github.event_name == 'push' }}
    timeout-minutes: 30
    continue-on-error: ${{ matrix.experimental }}
    env: {CC: gcc}
    defaults:
      run: {shell: sh}
    outputs:
      version: ${{ steps.v.outputs.version }}
    permissions: {contents: read}
    environment: production
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
          submodules: true
      - id: v
        name: Version
        run: |
          echo version=1 >> "$GITHUB_OUTPUT"
        shell: bash -e {0}
        working-directory: tools
        env: {X: y}
        if: success()
        continue-on-error: true
        timeout-minutes: 2.5
  test:
    runs-on:
      group: illumos
      labels: omnios
    needs: BUILD
    steps:
      - run: gmake test
  lint:
    runs-on: omnios
    needs: [build, test]
    steps:
      - run: make lint
`

func TestParseModel(t *testing.T) {
	w := mustParse(t, fullWorkflow)
	if w.Name != "CI" || w.On == nil || w.Permissions == nil || w.Concurrency == nil {
		t.Errorf("workflow = %+v", w)
	}
	if want := []Pair{{"B", "two", Pos{8, 3}}, {"A", "1", Pos{9, 3}}}; !reflect.DeepEqual(w.Env, want) {
		t.Errorf("env = %+v, want %+v", w.Env, want)
	}
	if want := (&RunDefaults{"bash", "src", Pos{11, 3}}); !reflect.DeepEqual(w.Defaults, want) {
		t.Errorf("defaults = %+v, want %+v", w.Defaults, want)
	}
	if got := []string{w.Jobs[0].ID, w.Jobs[1].ID, w.Jobs[2].ID}; !reflect.DeepEqual(got, []string{"build", "test", "lint"}) {
		t.Errorf("jobs in order = %v", got)
	}
	checkBuildJob(t, w.Jobs[0])
	checkSteps(t, w.Jobs[0].Steps)
	test := w.Jobs[1]
	if !reflect.DeepEqual(test.RunsOn, RunsOn{Labels: []string{"omnios"}, Group: "illumos", Pos: Pos{45, 7}, LabelPos: map[string]Pos{"omnios": {46, 15}}}) {
		t.Errorf("test runs-on = %+v", test.RunsOn)
	}
	if !reflect.DeepEqual(test.Needs, []string{"build"}) || test.NeedsPos[0] != (Pos{47, 12}) {
		t.Errorf("needs = %v at %v, want the job id's spelling", test.Needs, test.NeedsPos)
	}
	if lint := w.Jobs[2]; !reflect.DeepEqual(lint.Needs, []string{"build", "test"}) {
		t.Errorf("lint needs = %v", lint.Needs)
	}
	if w.Job("LINT") != w.Jobs[2] || w.Job("nope") != nil {
		t.Errorf("Job lookup")
	}
}

func checkBuildJob(t *testing.T, j *Job) {
	t.Helper()
	if j.Pos != (Pos{15, 3}) || j.Keys["runs-on"] != (Pos{17, 5}) || j.Keys["steps"] != (Pos{28, 5}) {
		t.Errorf("positions: job %v, keys %v", j.Pos, j.Keys)
	}
	if !reflect.DeepEqual(j.RunsOn.Labels, []string{"self-hosted", "omnios-r151056"}) {
		t.Errorf("runs-on = %v", j.RunsOn.Labels)
	}
	if j.Name != "Build" || j.If != "${{ github.event_name == 'push' }}" {
		t.Errorf("name %q if %q", j.Name, j.If)
	}
	if *j.TimeoutMinutes != (NumberOrExpr{Value: 30}) || j.ContinueOnError != (BoolOrExpr{Expr: "${{ matrix.experimental }}"}) {
		t.Errorf("timeout %+v continue-on-error %+v", j.TimeoutMinutes, j.ContinueOnError)
	}
	if !reflect.DeepEqual(j.Defaults, &RunDefaults{Shell: "sh", Pos: Pos{23, 7}}) {
		t.Errorf("defaults = %+v", j.Defaults)
	}
	if !reflect.DeepEqual(j.Outputs, []Pair{{"version", "${{ steps.v.outputs.version }}", Pos{25, 7}}}) {
		t.Errorf("outputs = %+v", j.Outputs)
	}
	if j.Permissions == nil || j.Environment == nil || j.Environment.Value != "production" {
		t.Errorf("raw keys not kept")
	}
}

func checkSteps(t *testing.T, steps []*Step) {
	t.Helper()
	co, v := steps[0], steps[1]
	if !co.IsCheckout() || co.Pos != (Pos{29, 9}) || co.Index != 0 {
		t.Errorf("checkout step = %+v", co)
	}
	if want := []Pair{{"fetch-depth", "0", Pos{31, 11}}, {"submodules", "true", Pos{32, 11}}}; !reflect.DeepEqual(co.With, want) {
		t.Errorf("with = %+v", co.With)
	}
	want := Step{
		Index: 1, Pos: Pos{33, 9}, ID: "v", Name: "Version", If: "success()",
		Run: "echo version=1 >> \"$GITHUB_OUTPUT\"\n", Shell: "bash -e {0}", WorkingDirectory: "tools",
		Env: []Pair{{"X", "y", Pos{39, 15}}}, ContinueOnError: BoolOrExpr{Value: true},
		TimeoutMinutes: &NumberOrExpr{Value: 2.5},
	}
	v.Keys = nil
	if !reflect.DeepEqual(*v, want) {
		t.Errorf("run step =\n %+v\nwant\n %+v", *v, want)
	}
}

func TestParseLenientScalars(t *testing.T) {
	// Gitea writes timeout-minutes and fail-fast as strings; anchors work.
	src := `x-common: &steps
  - run: make
jobs:
  build:
    runs-on: omnios
    timeout-minutes: "45"
    strategy:
      fail-fast: "false"
      max-parallel: "2"
    steps: *steps
`
	_, err := Parse([]byte(src), "wf.yml")
	if err == nil || err.Error() != `wf.yml:1:1: unknown key "x-common" in the workflow (workflow)` {
		t.Fatalf("x-common: %v", err)
	}
	src = "jobs:\n  build:\n    steps: &s [{run: make}]\n    runs-on: omnios\n    timeout-minutes: \"45\"\n    strategy:\n      fail-fast: \"false\"\n      max-parallel: \"2\"\n"
	j := mustParse(t, src).Jobs[0]
	if j.TimeoutMinutes.Value != 45 || j.Strategy.FailFast.Value || j.Strategy.MaxParallel.Value != 2 {
		t.Errorf("job = %+v strategy %+v", j, j.Strategy)
	}
}
