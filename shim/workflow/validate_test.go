package workflow

import (
	"errors"
	"testing"
)

// job wraps a job body (indented 4) as job "build" of a workflow whose
// first job line is line 3.
func job(body string) string {
	return "on: push\njobs:\n  build:\n" + indent(body, 4) + "\n"
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{{
		name: "step uses another action",
		src: job(`runs-on: omnios
steps:
  - uses: actions/checkout@v4
  - name: Setup node
    uses: actions/setup-node@v4
  - uses: docker://alpine:3
  - uses: ./local-action
  - uses: actions/checkout`),
		want: []string{
			`wf.yml:8:15: job "build" step "Setup node" uses actions/setup-node@v4: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and solstice-ci/kdl are supported (jobs.<job_id>.steps[*].uses)`,
			`wf.yml:9:15: job "build" step 3 uses docker://alpine:3: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and solstice-ci/kdl are supported (jobs.<job_id>.steps[*].uses)`,
			`wf.yml:10:15: job "build" step 4 uses ./local-action: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and solstice-ci/kdl are supported (jobs.<job_id>.steps[*].uses)`,
			`wf.yml:11:15: job "build" step 5 uses actions/checkout: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and solstice-ci/kdl are supported (jobs.<job_id>.steps[*].uses)`,
		},
	}, {
		name: "the KDL action needs path and job",
		src: job(`runs-on: omnios
steps:
  - uses: solstice-ci/kdl@v1
    with:
      path: .solstice/workflow.kdl
      job: build
  - uses: solstice-ci/kdl@v1
    with:
      path: .solstice/workflow.kdl`),
		want: []string{
			`wf.yml:10:15: job "build" step 2 uses solstice-ci/kdl@v1 without with.job (jobs.<job_id>.steps[*].uses)`,
		},
	}, {
		name: "reusable workflow, container, services",
		src: job(`runs-on: omnios
container: node:20
services:
  db: {image: postgres}
steps:
  - run: make`) + `  call:
    uses: octo/repo/.github/workflows/ci.yml@v1
    with:
      x: 1
    secrets: inherit
`,
		want: []string{
			`wf.yml:5:5: job "build" sets container: container jobs are not supported, each job runs directly in its VM (jobs.<job_id>.container)`,
			`wf.yml:6:5: job "build" sets services: service containers are not supported (jobs.<job_id>.services)`,
			`wf.yml:11:5: job "call" calls reusable workflow "octo/repo/.github/workflows/ci.yml@v1": reusable workflows are not supported (jobs.<job_id>.uses)`,
		},
	}, {
		name: "unknown keys with and without a suggestion",
		src: job(`run-on: omnios
timeout: 5
colour: red
steps:
  - run: make
    working-dir: src
    shel: bash`) + "nme: x\n",
		want: []string{
			`wf.yml:4:5: unknown key "run-on" in job "build" (did you mean "runs-on"?)`,
			`wf.yml:5:5: unknown key "timeout" in job "build" (did you mean "timeout-minutes"?)`,
			`wf.yml:6:5: unknown key "colour" in job "build" (jobs.<job_id>)`,
			`wf.yml:9:9: unknown key "working-dir" in job "build" step 1 (did you mean "working-directory"?)`,
			`wf.yml:10:9: unknown key "shel" in job "build" step 1 (did you mean "shell"?)`,
			`wf.yml:11:1: unknown key "nme" in the workflow (did you mean "name"?)`,
		},
	}, {
		name: "run and uses: both, neither, and keys of the other kind",
		src: job(`runs-on: omnios
steps:
  - run: make
    uses: actions/checkout@v4
  - name: nothing
  - uses: actions/checkout@v4
    shell: bash
  - run: make
    with: {a: b}`),
		want: []string{
			`wf.yml:6:9: job "build" step 1 has both run and uses; a step has exactly one (jobs.<job_id>.steps[*])`,
			`wf.yml:8:9: job "build" step "nothing" has neither run nor uses (jobs.<job_id>.steps[*])`,
			`wf.yml:10:9: job "build" step 3 sets shell, which is only valid on a run step (jobs.<job_id>.steps[*])`,
			`wf.yml:12:9: job "build" step 4 sets with, which is only valid on a uses step (jobs.<job_id>.steps[*])`,
		},
	}, {
		name: "needs an unknown job",
		src: `jobs:
  build:
    runs-on: omnios
    steps: [{run: make}]
  test:
    runs-on: omnios
    needs: [biuld, deploy]
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:7:13: job "test" needs unknown job "biuld" (did you mean "build"?)`,
			`wf.yml:7:20: job "test" needs unknown job "deploy" (jobs.<job_id>.needs)`,
		},
	}, {
		name: "needs cycles are named",
		src: `jobs:
  a:
    runs-on: omnios
    needs: c
    steps: [{run: make}]
  b:
    runs-on: omnios
    needs: a
    steps: [{run: make}]
  c:
    runs-on: omnios
    needs: [b]
    steps: [{run: make}]
  d:
    runs-on: omnios
    needs: [a, d]
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:4:12: job "a" needs "c", which makes a cycle: a -> c -> b -> a (jobs.<job_id>.needs)`,
			`wf.yml:16:16: job "d" needs "d", which makes a cycle: d -> d (jobs.<job_id>.needs)`,
		},
	}, {
		name: "step ids: duplicates (ignoring case) and bad ids",
		src: job(`runs-on: omnios
steps:
  - id: make
    run: make
  - id: Make
    run: make check
  - id: 1st
    run: true`),
		want: []string{
			`wf.yml:8:9: job "build" has two steps with id "Make" (first at 6:9) (jobs.<job_id>.steps[*].id)`,
			`wf.yml:10:9: job "build" step 3 has id "1st", which must start with a letter or _ and contain only letters, digits, - and _ (jobs.<job_id>.steps[*].id)`,
		},
	}, {
		name: "bad timeout-minutes and continue-on-error",
		src: job(`runs-on: omnios
timeout-minutes: ten
continue-on-error: maybe
steps:
  - run: make
    timeout-minutes: 0
  - run: make
    timeout-minutes: [1]
  - run: make
    timeout-minutes: -5`),
		want: []string{
			`wf.yml:5:22: timeout-minutes must be a number or a ${{ }} expression, not "ten" (jobs.<job_id>.timeout-minutes)`,
			`wf.yml:6:24: continue-on-error must be true, false or a ${{ }} expression, not "maybe" (jobs.<job_id>.continue-on-error)`,
			`wf.yml:9:26: timeout-minutes must be a positive number of minutes, not 0 (jobs.<job_id>.steps[*].timeout-minutes)`,
			`wf.yml:11:26: timeout-minutes must be a number or a ${{ }} expression, not a list (jobs.<job_id>.steps[*].timeout-minutes)`,
			`wf.yml:13:26: timeout-minutes must be a positive number of minutes, not -5 (jobs.<job_id>.steps[*].timeout-minutes)`,
		},
	}, {
		name: "matrix that is not a mapping",
		src: job(`runs-on: omnios
strategy:
  matrix: [a, b]
steps: [{run: make}]`),
		want: []string{
			`wf.yml:6:15: strategy.matrix of job "build" must be a mapping (jobs.<job_id>.strategy.matrix)`,
		},
	}, {
		name: "include and exclude that are not lists of mappings",
		src: job(`runs-on: omnios
strategy:
  matrix:
    os: [a]
    include: {os: b}
    exclude:
      - os
      - {}
steps: [{run: make}]`),
		want: []string{
			`wf.yml:8:18: matrix include must be a list of mappings, not a mapping (jobs.<job_id>.strategy.matrix.include)`,
			`wf.yml:10:13: a matrix exclude entry must be a mapping, not "os" (jobs.<job_id>.strategy.matrix.exclude)`,
			`wf.yml:11:13: a matrix exclude entry is empty (jobs.<job_id>.strategy.matrix.exclude)`,
		},
	}, {
		name: "exclude naming a key that is not a vector",
		src: job(`runs-on: omnios
strategy:
  matrix:
    os: [a, b]
    include: [{arch: x64}]
    exclude:
      - os: a
        arch: x64
steps: [{run: make}]`),
		want: []string{
			`wf.yml:11:13: matrix exclude names "arch", which is not a matrix vector (vectors: os) (jobs.<job_id>.strategy.matrix.exclude)`,
		},
	}, {
		name: "vectors that are empty or not lists, a matrix with nothing",
		src: job(`runs-on: omnios
strategy:
  matrix:
    os: []
    cc: gcc
steps: [{run: make}]`) + `  other:
    runs-on: omnios
    strategy:
      matrix: {}
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:7:9: the matrix of job "build" defines no vector and no include (jobs.<job_id>.strategy.matrix)`,
			`wf.yml:7:13: matrix vector "os" of job "build" has no values (jobs.<job_id>.strategy.matrix)`,
			`wf.yml:8:13: matrix vector "cc" of job "build" must be a list of values, not "gcc" (jobs.<job_id>.strategy.matrix)`,
			`wf.yml:13:15: the matrix of job "other" defines no vector and no include (jobs.<job_id>.strategy.matrix)`,
		},
	}, {
		name: "matrix making no combination",
		src: job(`runs-on: omnios
strategy:
  matrix:
    os: [a, b]
    exclude: [{os: a}, {os: B}]
steps: [{run: make}]`),
		want: []string{
			`wf.yml:7:9: the matrix of job "build" makes no combination (every combination is excluded) (jobs.<job_id>.strategy.matrix)`,
		},
	}, {
		name: "matrix making more than 256 combinations",
		src: job(`runs-on: omnios
strategy:
  matrix:
    a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    b: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    include: [{a: 0}]
steps: [{run: make}]`),
		want: []string{
			`wf.yml:7:9: the matrix of job "build" makes 257 combinations; GitHub allows at most 256 (jobs.<job_id>.strategy.matrix)`,
		},
	}, {
		name: "bad fromJSON literal",
		src: job(`runs-on: omnios
strategy:
  matrix: "${{ fromJSON('{os: [a]}') }}"
steps: [{run: make}]`),
		want: []string{
			`wf.yml:6:15: fromJSON argument is not valid JSON: {os: [a]} (jobs.<job_id>.strategy.matrix)`,
		},
	}, {
		name: "job ids: bad, repeated ignoring case",
		src: `jobs:
  1build:
    runs-on: omnios
    steps: [{run: make}]
  Test:
    runs-on: omnios
    steps: [{run: make}]
  test:
    runs-on: omnios
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:2:3: job id "1build" must start with a letter or _ and contain only letters, digits, - and _ (jobs)`,
			`wf.yml:8:3: job id "test" repeats job id "Test" at 5:3 (job ids ignore case) (jobs)`,
		},
	}, {
		name: "runs-on missing, empty, group only",
		src: `jobs:
  a:
    steps: [{run: make}]
  b:
    runs-on: {group: big}
    steps: [{run: make}]
  c:
    runs-on: [omnios, ""]
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:2:3: job "a" has no runs-on (jobs.<job_id>.runs-on)`,
			`wf.yml:5:14: job "b" runs-on names no label (a runner group alone cannot select an image) (jobs.<job_id>.runs-on)`,
			`wf.yml:8:14: job "c" has an empty runs-on label (jobs.<job_id>.runs-on)`,
		},
	}, {
		name: "with and secrets without uses, env values that are not strings, duplicate keys",
		src: job(`runs-on: omnios
with: {a: b}
env:
  A: [1]
  B: ok
  B: again
steps: [{run: make}]`),
		want: []string{
			`wf.yml:5:5: key "with" in job "build" is only valid with a reusable workflow (uses) (jobs.<job_id>.uses)`,
			`wf.yml:7:10: env value "A" must be a string (env)`,
			`wf.yml:9:7: duplicate key "B" in env (first at 8:7) (env)`,
		},
	}, {
		name: "jobs without steps",
		src: `jobs:
  a:
    runs-on: omnios
  b:
    runs-on: omnios
    steps: []
`,
		want: []string{
			`wf.yml:2:3: job "a" has no steps (jobs.<job_id>.steps)`,
			`wf.yml:6:12: job "b" has no steps (jobs.<job_id>.steps)`,
		},
	}, {
		name: "exclude from a fromJSON literal is checked too",
		src: job(`runs-on: omnios
strategy:
  matrix:
    os: [a, b]
    exclude: "${{ fromJSON('[{\"arch\": \"x\"}]') }}"
steps: [{run: make}]`),
		want: []string{
			`wf.yml:8:18: matrix exclude names "arch", which is not a matrix vector (vectors: os) (jobs.<job_id>.strategy.matrix.exclude)`,
		},
	}, {
		name: "no jobs",
		src:  "on: push\njobs: {}\n",
		want: []string{`wf.yml:2:7: the workflow has no jobs (jobs)`},
	}, {
		name: "jobs missing",
		src:  "on: push\nname: x\n",
		want: []string{`wf.yml:1:1: the workflow has no jobs (jobs)`},
	}, {
		name: "empty file",
		src:  "",
		want: []string{`wf.yml:1:1: the file is empty (YAML)`},
	}, {
		name: "YAML syntax error",
		src:  "jobs:\n  build:\n    runs-on: a: b\n",
		want: []string{`wf.yml:3:1: mapping values are not allowed in this context (YAML)`},
	}, {
		name: "not a mapping",
		src:  "- a\n- b\n",
		want: []string{`wf.yml:1:1: a workflow must be a mapping (workflow)`},
	}, {
		name: "defaults with unknown keys",
		src: `defaults:
  run:
    shel: bash
  bash: {}
jobs:
  build:
    runs-on: omnios
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:3:5: unknown key "shel" in defaults.run (did you mean "shell"?)`,
			`wf.yml:4:3: unknown key "bash" in defaults (defaults.run)`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, "errors", parseErrors(tt.src), tt.want)
		})
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := Parse([]byte(job("runs-on: x\nstep: []")), "ci.yml")
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("err = %#v, want Errors of one", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "ci.yml" || e.Pos != (Pos{5, 5}) || e.Feature != `did you mean "steps"?` {
		t.Errorf("first error = %+v", e)
	}
}
