package workflow

import (
	"math"
	"testing"
)

// The examples of GitHub's docs ("Running variations of jobs in a
// workflow") and of MatrixBuilder.cs, with their combinations in GitHub's
// order and their display names.
func TestMatrixExpansion(t *testing.T) {
	tests := []struct {
		name   string
		matrix string
		want   []string // combination | display name
	}{{
		name: "fruit and animal (docs: Expanding or adding matrix configurations)",
		matrix: `fruit: [apple, pear]
animal: [cat, dog]
include:
  - color: green
  - color: pink
    animal: cat
  - fruit: apple
    shape: circle
  - fruit: banana
  - fruit: banana
    animal: cat
`,
		want: []string{
			"{fruit: apple, animal: cat, color: pink, shape: circle} | test (apple, cat)",
			"{fruit: apple, animal: dog, color: green, shape: circle} | test (apple, dog)",
			"{fruit: pear, animal: cat, color: pink} | test (pear, cat)",
			"{fruit: pear, animal: dog, color: green} | test (pear, dog)",
			"{fruit: banana} | test (banana)",
			"{fruit: banana, animal: cat} | test (banana, cat)",
		},
	}, {
		name: "plain product: first key varies slowest",
		matrix: `version: [10, 12, 14]
os: [ubuntu-latest, windows-latest]
`,
		want: []string{
			"{version: 10(int64), os: ubuntu-latest} | test (10, ubuntu-latest)",
			"{version: 10(int64), os: windows-latest} | test (10, windows-latest)",
			"{version: 12(int64), os: ubuntu-latest} | test (12, ubuntu-latest)",
			"{version: 12(int64), os: windows-latest} | test (12, windows-latest)",
			"{version: 14(int64), os: ubuntu-latest} | test (14, ubuntu-latest)",
			"{version: 14(int64), os: windows-latest} | test (14, windows-latest)",
		},
	}, {
		name: "docs: Excluding matrix configurations (partial match)",
		matrix: `os: [macos-latest, windows-latest]
version: [12, 14, 16]
environment: [staging, production]
exclude:
  - os: macos-latest
    version: 12
    environment: production
  - os: windows-latest
    version: 16
`,
		want: []string{
			"{os: macos-latest, version: 12(int64), environment: staging} | test (macos-latest, 12, staging)",
			"{os: macos-latest, version: 14(int64), environment: staging} | test (macos-latest, 14, staging)",
			"{os: macos-latest, version: 14(int64), environment: production} | test (macos-latest, 14, production)",
			"{os: macos-latest, version: 16(int64), environment: staging} | test (macos-latest, 16, staging)",
			"{os: macos-latest, version: 16(int64), environment: production} | test (macos-latest, 16, production)",
			"{os: windows-latest, version: 12(int64), environment: staging} | test (windows-latest, 12, staging)",
			"{os: windows-latest, version: 12(int64), environment: production} | test (windows-latest, 12, production)",
			"{os: windows-latest, version: 14(int64), environment: staging} | test (windows-latest, 14, staging)",
			"{os: windows-latest, version: 14(int64), environment: production} | test (windows-latest, 14, production)",
		},
	}, {
		name: "docs: Example: Expanding configurations",
		matrix: `os: [windows-latest, ubuntu-latest]
node: [14, 16]
include:
  - os: windows-latest
    node: 16
    npm: 6
`,
		want: []string{
			"{os: windows-latest, node: 14(int64)} | test (windows-latest, 14)",
			"{os: windows-latest, node: 16(int64), npm: 6(int64)} | test (windows-latest, 16)",
			"{os: ubuntu-latest, node: 14(int64)} | test (ubuntu-latest, 14)",
			"{os: ubuntu-latest, node: 16(int64)} | test (ubuntu-latest, 16)",
		},
	}, {
		name: "docs: Example: Adding configurations",
		matrix: `os: [windows-latest, ubuntu-latest]
node: [14, 16]
include:
  - os: windows-latest
    node: 17
`,
		want: []string{
			"{os: windows-latest, node: 14(int64)} | test (windows-latest, 14)",
			"{os: windows-latest, node: 16(int64)} | test (windows-latest, 16)",
			"{os: ubuntu-latest, node: 14(int64)} | test (ubuntu-latest, 14)",
			"{os: ubuntu-latest, node: 16(int64)} | test (ubuntu-latest, 16)",
			"{os: windows-latest, node: 17(int64)} | test (windows-latest, 17)",
		},
	}, {
		name: "include only (docs: include without a matrix)",
		matrix: `include:
  - site: production
    datacenter: site-a
  - site: staging
    datacenter: site-b
`,
		want: []string{
			"{site: production, datacenter: site-a} | test (production, site-a)",
			"{site: staging, datacenter: site-b} | test (staging, site-b)",
		},
	}, {
		name: "MatrixBuilder example 2: exclude",
		matrix: `arch: [x64, x86]
os: [linux, windows]
exclude:
  - arch: x86
    os: linux
`,
		want: []string{
			"{arch: x64, os: linux} | test (x64, linux)",
			"{arch: x64, os: windows} | test (x64, windows)",
			"{arch: x86, os: windows} | test (x86, windows)",
		},
	}, {
		name: "MatrixBuilder example 3: include adds a value",
		matrix: `arch: [x64, x86]
os: [linux, windows]
include:
  - arch: x64
    os: linux
    publish: true
`,
		want: []string{
			"{arch: x64, os: linux, publish: true(bool)} | test (x64, linux)",
			"{arch: x64, os: windows} | test (x64, windows)",
			"{arch: x86, os: linux} | test (x86, linux)",
			"{arch: x86, os: windows} | test (x86, windows)",
		},
	}, {
		name: "MatrixBuilder example 4: an include matching nothing is appended, filter keys first",
		matrix: `arch: [x64, x86]
os: [linux, windows]
include:
  - os: macos
    arch: x64
    note: new
  - arch: x64
`,
		want: []string{
			"{arch: x64, os: linux} | test (x64, linux)",
			"{arch: x64, os: windows} | test (x64, windows)",
			"{arch: x86, os: linux} | test (x86, linux)",
			"{arch: x86, os: windows} | test (x86, windows)",
			"{os: macos, arch: x64, note: new} | test (macos, x64, new)",
		},
	}, {
		name: "include is matched after exclude: re-adding an excluded combination appends it",
		matrix: `os: [a, b]
exclude:
  - os: b
include:
  - os: b
    extra: 1
`,
		want: []string{
			"{os: a} | test (a)",
			"{os: b, extra: 1(int64)} | test (b, 1)",
		},
	}, {
		name: "filters compare like == : case-insensitive strings, numbers against strings, keys ignore case",
		matrix: `os: [Windows-Latest, ubuntu]
node: [16, "18"]
include:
  - OS: windows-latest
    node: "16"
    npm: 6
  - node: 18
    lts: true
`,
		want: []string{
			"{os: Windows-Latest, node: 16(int64), npm: 6(int64)} | test (Windows-Latest, 16)",
			"{os: Windows-Latest, node: 18, lts: true(bool)} | test (Windows-Latest, 18)",
			"{os: ubuntu, node: 16(int64)} | test (ubuntu, 16)",
			"{os: ubuntu, node: 18, lts: true(bool)} | test (ubuntu, 18)",
		},
	}, {
		name: "nested values: leaves are compared, display name lists scalar leaves",
		matrix: `cfg:
  - {name: gcc, flags: [-O2, -g]}
  - {name: clang}
include:
  - cfg: {name: gcc}
    cc: gcc-14
`,
		want: []string{
			"{cfg: {name: gcc, flags: [-O2, -g]}, cc: gcc-14} | test (gcc, -O2, -g)",
			"{cfg: {name: clang}} | test (clang)",
		},
	}, {
		name: "later include overwrites an extra of an earlier one, keeping its place",
		matrix: `os: [a]
include:
  - x: 1
    y: 1
  - x: 2
`,
		want: []string{"{os: a, x: 2(int64), y: 1(int64)} | test (a)"},
	}, {
		name: "numbers and booleans in names as GitHub prints them",
		matrix: `python: [3.10, 3.9, 1e20]
debug: [false]
`,
		want: []string{
			"{python: 3.1(float64), debug: false(bool)} | test (3.1, false)",
			"{python: 3.9(float64), debug: false(bool)} | test (3.9, false)",
			"{python: 1e+20(float64), debug: false(bool)} | test (1E+20, false)",
		},
	}, {
		name:   "fromJSON of a literal",
		matrix: `${{ fromJSON('{"os":["b","a"],"include":[{"os":"a","it''s":1}]}') }}`,
		want: []string{
			"{os: b} | test (b)",
			"{os: a, it's: 1(int64)} | test (a)",
		},
	}, {
		name: "fromJSON of a literal as a vector",
		matrix: `os: ${{ fromJson('["x", "y"]') }}
n: [1]
`,
		want: []string{"{os: x, n: 1(int64)} | test (x, 1)", "{os: y, n: 1(int64)} | test (y, 1)"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := matrixWorkflow(tt.matrix)
			if tt.matrix[0] == '$' {
				src = "jobs:\n  test:\n    runs-on: omnios\n    strategy:\n      matrix: " + tt.matrix + "\n    steps:\n      - run: make\n"
			}
			var got []string
			for _, r := range mustRuns(t, src) {
				got = append(got, fmtValue(r.Matrix)+" | "+r.Name)
			}
			equalLines(t, "combinations", got, tt.want)
		})
	}
}

func TestMatrixStrategyContext(t *testing.T) {
	runs := mustRuns(t, matrixWorkflow("os: [a, b, c]"))
	for i, r := range runs {
		want := StrategyContext{FailFast: true, JobIndex: i, JobTotal: 3, MaxParallel: 3}
		if r.Strategy != want {
			t.Errorf("run %d: strategy %+v, want %+v", i, r.Strategy, want)
		}
	}
	src := "jobs:\n  t:\n    runs-on: x\n    strategy:\n      fail-fast: false\n      max-parallel: 2\n      matrix:\n        os: [a, b, c]\n    steps:\n      - run: make\n"
	runs = mustRuns(t, src)
	if want := (StrategyContext{FailFast: false, JobIndex: 2, JobTotal: 3, MaxParallel: 2}); runs[2].Strategy != want {
		t.Errorf("strategy %+v, want %+v", runs[2].Strategy, want)
	}
	src = "jobs:\n  t:\n    runs-on: x\n    strategy:\n      max-parallel: 4\n    steps:\n      - run: make\n"
	runs = mustRuns(t, src)
	if want := (StrategyContext{FailFast: true, JobIndex: 0, JobTotal: 1, MaxParallel: 1}); runs[0].Strategy != want {
		t.Errorf("no matrix: strategy %+v, want %+v", runs[0].Strategy, want)
	}
	if runs[0].Matrix != nil {
		t.Errorf("no matrix: Matrix = %v, want nil", runs[0].Matrix)
	}
}

func TestMatrixFromExpressionIsRefusedByRuns(t *testing.T) {
	tests := []struct{ src, want string }{{
		src: `jobs:
  test:
    runs-on: omnios
    strategy:
      matrix: ${{ fromJSON(needs.setup.outputs.matrix) }}
    steps:
      - run: make
`,
		want: `wf.yml:5:15: job "test": matrix from an expression is not supported by solstice run: ${{ fromJSON(needs.setup.outputs.matrix) }} (jobs.<job_id>.strategy.matrix)`,
	}, {
		src:  matrixWorkflow("os: [a, '${{ inputs.os }}']"),
		want: `wf.yml:7:17: job "test": matrix from an expression is not supported by solstice run: ${{ inputs.os }} (jobs.<job_id>.strategy.matrix)`,
	}, {
		src: `jobs:
  test:
    runs-on: omnios
    strategy: ${{ fromJSON(vars.strategy) }}
    steps:
      - run: make
`,
		want: `wf.yml:4:5: job "test": strategy from an expression is not supported by solstice run: ${{ fromJSON(vars.strategy) }} (jobs.<job_id>.strategy)`,
	}, {
		src: `jobs:
  test:
    runs-on: omnios
    strategy:
      fail-fast: ${{ vars.ff }}
    steps:
      - run: make
`,
		want: `wf.yml:5:7: job "test": strategy.fail-fast from an expression is not supported by solstice run (jobs.<job_id>.strategy)`,
	}}
	for _, tt := range tests {
		w := mustParse(t, tt.src) // valid for a forge, which evaluates it
		_, err := w.Runs()
		if err == nil || err.Error() != tt.want {
			t.Errorf("Runs error:\n got %v\nwant %s", err, tt.want)
		}
	}
}

func TestLooseEqual(t *testing.T) {
	tests := []struct {
		a, b any
		want bool
	}{
		{"abc", "ABC", true},
		{int64(1), "1", true},
		{1.0, "1.0", true},
		{int64(16), "0x10", true},
		{int64(0), "", true},
		{nil, nil, true},
		{nil, int64(0), true},
		{nil, "", true},
		{true, int64(1), true},
		{true, "true", false},
		{false, "0", true},
		{"a", Map{}, false},
		{math.NaN(), math.NaN(), false},
		{"x", nil, false},
		{" 2 ", int64(2), true},
	}
	for _, tt := range tests {
		if got := looseEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("looseEqual(%#v, %#v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
