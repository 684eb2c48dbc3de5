package workflow

import (
	"os"
	"testing"
)

// maxFuzzInput bounds fuzzed workflows. Forgejo and Gitea send a job's
// payload whole (the forge bounds workflow files well below this) and
// `solstice run` reads the user's own file; bigger inputs only slow the
// fuzzer down.
const maxFuzzInput = 64 << 10

var fuzzCatalog = map[string]string{"omnios": "omnios", "omnios-r151056": "omnios", "solstice-test": "solstice-test", "ubuntu-20.04": "solstice-test"}

var workflowSeeds = []string{
	fullWorkflow,
	matrixWorkflow("fruit: [apple, pear]\nanimal: [cat, dog]\ninclude:\n  - color: green\n  - color: pink\n    animal: cat\n  - fruit: banana\nexclude:\n  - fruit: pear\n    animal: dog\n"),
	matrixWorkflow("os: [a, b]\nnode: [{v: 1, lts: true}, {v: 2}]\nexclude:\n  - node: {v: 2}\n"),
	matrixWorkflow("${{ fromJSON('{\"os\":[\"x\",\"y\"],\"include\":[{\"os\":\"z\"}]}') }}"),
	matrixWorkflow("include: ${{ fromJSON(needs.a.outputs.m) }}"),
	"on: push\njobs:\n  t:\n    name: t ${{ matrix.os }}\n    runs-on: ${{ matrix.os }}\n    timeout-minutes: ${{ matrix.t }}\n    continue-on-error: ${{ matrix.x }}\n    strategy:\n      fail-fast: false\n      max-parallel: 2\n      matrix:\n        os: [omnios, [omnios, x64]]\n        t: [5]\n        x: [true]\n    steps: [{run: make}]\n",
	"x: &a [{run: make}]\njobs:\n  build:\n    steps: *a\n    runs-on: omnios\n    timeout-minutes: \"45\"\n    strategy: {fail-fast: \"false\", max-parallel: \"2\"}\n",
	"jobs:\n  a: {runs-on: omnios, needs: [c], steps: [{run: x}]}\n  b: {runs-on: omnios, needs: a, steps: [{run: x}]}\n  c: {runs-on: omnios, needs: B, steps: [{run: x}]}\n",
	"jobs:\n  k:\n    runs-on: omnios\n    steps:\n      - uses: solstice-ci/kdl@v1\n        with: {path: .solstice/workflow.kdl, job: build}\n      - uses: actions/checkout@v4\n        with: {fetch-depth: 0}\n",
	"---\n...\n",
	"jobs: &j {a: *j}\n",
}

// FuzzParse parses a workflow as `solstice run` and `solstice validate`
// do, then expands its runs (matrix included) and orders them.
func FuzzParse(f *testing.F) {
	for _, s := range workflowSeeds {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../examples/hello.yml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		w, err := Parse(data, "wf.yml")
		if err != nil {
			_ = err.Error()
			return
		}
		runs, err := w.Runs()
		if err != nil {
			return
		}
		perJob := map[string]int{}
		for _, r := range runs {
			if perJob[r.JobID]++; perJob[r.JobID] > MaxCombinations {
				t.Fatalf("job %q expanded to more than %d runs", r.JobID, MaxCombinations)
			}
			_, _ = ResolveLabel(r.RunsOn, fuzzCatalog)
		}
		waves, err := Order(runs)
		if err != nil {
			t.Fatalf("Parse accepted a workflow whose runs Order rejects: %v", err)
		}
		n := 0
		for _, w := range waves {
			n += len(w)
		}
		if n != len(runs) {
			t.Fatalf("Order returned %d runs of %d", n, len(runs))
		}
	})
}

// FuzzParseSingleJob parses a Forgejo/Gitea task payload as the Forgejo
// shim does. A payload that parses makes exactly one run.
func FuzzParseSingleJob(f *testing.F) {
	f.Add([]byte("name: test\non: push\njobs:\n  job1:\n    name: job1 (ubuntu-20.04, 1.18)\n    needs: [prepare]\n    runs-on: ubuntu-20.04\n    steps:\n      - run: uname -a && go version\n    strategy:\n      matrix:\n        os:\n          - ubuntu-20.04\n        version:\n          - 1.18\n      job-index: 4\n      job-total: 6\n"))
	f.Add([]byte("on: push\njobs:\n  build:\n    name: build (amd64, r151050)\n    runs-on: debian-test\n    strategy:\n      matrix:\n        arch: [amd64]\n        rel: [r151050]\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ matrix.arch }}\n"))
	f.Add([]byte("jobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix: {os: [x, y]}\n    steps: [{run: make}]\n"))
	f.Add([]byte("jobs:\n  a:\n    runs-on: x\n    strategy: {job-index: \"1\", job-total: 1e300, max-parallel: -5}\n    steps: [{run: make}]\n"))
	for _, s := range workflowSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		w, err := ParseSingleJob(data)
		if err != nil {
			_ = err.Error()
			return
		}
		runs, err := w.Runs()
		if err != nil {
			return
		}
		if len(runs) != 1 {
			t.Fatalf("a single-job payload made %d runs", len(runs))
		}
	})
}
