package workflow

import (
	"reflect"
	"strings"
	"testing"
)

func TestDisplayNames(t *testing.T) {
	long := strings.Repeat("x", 95)
	tests := []struct {
		name, job, matrix string
		want              []string
	}{
		{"no name, no matrix", "", "", []string{"build"}},
		{"name, no matrix", "name: Build it", "", []string{"Build it"}},
		{"no name, matrix", "", "os: [a, b]", []string{"build (a)", "build (b)"}},
		{"literal name gets the values too", "name: Build", "os: [a]\ncc: [gcc]", []string{"Build (a, gcc)"}},
		{"name with matrix expressions is used as is", "name: Build on ${{ matrix.os }}/${{ matrix.cfg.cc }}", "os: [a]\ncfg: [{cc: gcc}]", []string{"Build on a/gcc"}},
		{"matrix keys ignore case", "name: ${{ MATRIX.OS }}", "os: [a]", []string{"a"}},
		{"other expressions stay", "name: ${{ github.ref }} ${{ matrix.os }}", "os: [a]", []string{"${{ github.ref }} a"}},
		{"missing keys are empty", "name: x${{ matrix.nope }}y", "os: [a]", []string{"xy"}},
		{"cut at 100 characters", "name: " + long, "os: [abcdefgh]", []string{long + " (" + "..."}},
		{"include-only values all show", "", "include: [{a: 1, b: [x, ''], c: null}]", []string{"build (1, x)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "jobs:\n  build:\n    runs-on: omnios\n" + indent(tt.job, 4) + "\n"
			if tt.matrix != "" {
				src += "    strategy:\n      matrix:\n" + indent(tt.matrix, 8) + "\n"
			}
			src += "    steps: [{run: make}]\n"
			var got []string
			for _, r := range mustRuns(t, src) {
				got = append(got, r.Name)
			}
			equalLines(t, "names", got, tt.want)
		})
	}
}

func TestRunFields(t *testing.T) {
	src := `env: {A: wf, B: wf}
defaults:
  run: {shell: bash, working-directory: src}
jobs:
  build:
    runs-on: ["${{ matrix.os }}", self-hosted]
    env: {B: job, C: job}
    timeout-minutes: ${{ matrix.t }}
    continue-on-error: ${{ matrix.exp }}
    strategy:
      matrix:
        os: [omnios, openindiana]
        t: [10]
        exp: [true]
    steps: [{run: make}]
  test:
    runs-on: ${{ matrix.labels }}
    needs: build
    defaults:
      run: {working-directory: tests}
    strategy:
      matrix:
        labels: [[self-hosted, omnios]]
    steps: [{run: make}]
`
	runs := mustRuns(t, src)
	b0, tst := runs[0], runs[2]
	if !reflect.DeepEqual(b0.RunsOn, []string{"omnios", "self-hosted"}) || !reflect.DeepEqual(runs[1].RunsOn, []string{"openindiana", "self-hosted"}) {
		t.Errorf("runs-on = %v, %v", b0.RunsOn, runs[1].RunsOn)
	}
	if !reflect.DeepEqual(tst.RunsOn, []string{"self-hosted", "omnios"}) {
		t.Errorf("runs-on from a list = %v", tst.RunsOn)
	}
	var env []string
	for _, p := range b0.Env {
		env = append(env, p.Name+"="+p.Value)
	}
	if strings.Join(env, " ") != "A=wf B=job C=job" {
		t.Errorf("env = %v", env)
	}
	if b0.Defaults.Shell != "bash" || b0.Defaults.WorkingDirectory != "src" {
		t.Errorf("workflow defaults = %+v", b0.Defaults)
	}
	if tst.Defaults.Shell != "" || tst.Defaults.WorkingDirectory != "tests" {
		t.Errorf("job defaults.run must replace the workflow's whole: %+v", tst.Defaults)
	}
	if b0.TimeoutMinutes != (NumberOrExpr{Value: 10}) || b0.ContinueOnError != (BoolOrExpr{Value: true}) {
		t.Errorf("timeout %+v continue-on-error %+v", b0.TimeoutMinutes, b0.ContinueOnError)
	}
	if tst.TimeoutMinutes != (NumberOrExpr{Value: DefaultTimeoutMinutes}) || !reflect.DeepEqual(tst.Needs, []string{"build"}) {
		t.Errorf("test run = %+v", tst)
	}
	if b0.JobID != "build" || b0.Job == nil || len(b0.Steps) != 1 {
		t.Errorf("run = %+v", b0)
	}
}

func TestMatrixJSON(t *testing.T) {
	runs := mustRuns(t, matrixWorkflow("z: [1]\na: [{y: true, b: [x, 2.5]}]\nq: [null]"))
	b, err := runs[0].Matrix.MarshalJSON()
	if err != nil || string(b) != `{"z":1,"a":{"y":true,"b":["x",2.5]},"q":null}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
}

func TestOrder(t *testing.T) {
	src := `jobs:
  lint:
    runs-on: omnios
    needs: [build, test]
    steps: [{run: make}]
  test:
    runs-on: omnios
    needs: build
    strategy: {matrix: {n: [1, 2]}}
    steps: [{run: make}]
  build:
    runs-on: omnios
    strategy: {matrix: {os: [a, b]}}
    steps: [{run: make}]
  docs:
    runs-on: omnios
    steps: [{run: make}]
`
	waves, err := Order(mustRuns(t, src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range waves {
		var names []string
		for _, r := range w {
			names = append(names, r.Name)
		}
		got = append(got, strings.Join(names, ", "))
	}
	equalLines(t, "waves", got, []string{"build (a), build (b), docs", "test (1), test (2)", "lint"})

	cyclic := []Run{{JobID: "a", Needs: []string{"b"}}, {JobID: "b", Needs: []string{"A"}}, {JobID: "c"}}
	if _, err := Order(cyclic); err == nil || err.Error() != `workflow: runs have a needs cycle among jobs "a", "b"` {
		t.Errorf("cycle: %v", err)
	}
}

func TestParseSingleJob(t *testing.T) {
	// The shape of Gitea's jobparser output for one matrix combination.
	payload := `name: test
on: push
jobs:
  job1:
    name: job1 (ubuntu-20.04, 1.18)
    needs: [prepare]
    runs-on: ubuntu-20.04
    steps:
      - run: uname -a && go version
    strategy:
      matrix:
        os:
          - ubuntu-20.04
        version:
          - 1.18
      job-index: 4
      job-total: 6
`
	w, err := ParseSingleJob([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	runs, err := w.Runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v, %v", runs, err)
	}
	r := runs[0]
	if r.Name != "job1 (ubuntu-20.04, 1.18)" || fmtValue(r.Matrix) != "{os: ubuntu-20.04, version: 1.18(float64)}" {
		t.Errorf("name %q matrix %s", r.Name, fmtValue(r.Matrix))
	}
	if want := (StrategyContext{FailFast: true, JobIndex: 4, JobTotal: 6, MaxParallel: 6}); r.Strategy != want {
		t.Errorf("strategy %+v, want %+v", r.Strategy, want)
	}
	if !reflect.DeepEqual(r.Needs, []string{"prepare"}) || !reflect.DeepEqual(r.RunsOn, []string{"ubuntu-20.04"}) {
		t.Errorf("needs %v runs-on %v", r.Needs, r.RunsOn)
	}
}

func TestParseSingleJobErrors(t *testing.T) {
	tests := []struct{ payload, want string }{{
		payload: "jobs:\n  a:\n    runs-on: x\n    steps: [{run: make}]\n  b:\n    runs-on: x\n    steps: [{run: make}]\n",
		want:    "payload:1:1: a single-job payload must hold exactly one job, not 2 (single-job payload)",
	}, {
		payload: "jobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix: {os: [x, y]}\n    steps: [{run: make}]\n",
		want:    `payload:5:15: the matrix of job "a" makes 2 combinations; a single-job payload has exactly one (single-job payload)`,
	}, {
		payload: "jobs:\n  a:\n    runs-on: x\n    steps: [{uses: actions/setup-go@v3}]\n",
		want:    `payload:4:20: job "a" step 1 uses actions/setup-go@v3: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and solstice-ci/kdl are supported (jobs.<job_id>.steps[*].uses)`,
	}}
	for _, tt := range tests {
		_, err := ParseSingleJob([]byte(tt.payload))
		if err == nil || err.Error() != tt.want {
			t.Errorf("error:\n got %v\nwant %s", err, tt.want)
		}
	}
	// job-index is only for payloads.
	src := "jobs:\n  a:\n    runs-on: x\n    strategy: {job-index: 1}\n    steps: [{run: make}]\n"
	equalLines(t, "job-index in a workflow", parseErrors(src), []string{`wf.yml:4:16: unknown key "job-index" in strategy of job "a" (jobs.<job_id>.strategy)`})
}
