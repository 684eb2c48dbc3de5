package workflow

import (
	"strings"
	"testing"
)

// TestExpressionAndShellPositions: solstice validate places a broken
// expression at the character where it breaks, in any scalar style, and
// an unknown shell at its value.
func TestExpressionAndShellPositions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{{
		name: "in a plain scalar",
		src: job(`runs-on: omnios
steps:
  - run: echo ${{ matrix.os ==  }}`),
		// job() indents by 4: the end comes right after "==", column 35
		want: []string{`wf.yml:6:35: unexpected end of expression in "echo ${{ matrix.os ==  }}" (expressions)`},
	}, {
		name: "unknown function in a literal block",
		src: job(`runs-on: omnios
steps:
  - run: |
      echo start
      echo ${{ toJSON(github) }} ${{ frobnicate(github.sha) }}`),
		want: []string{`wf.yml:8:42: unknown function "frobnicate" in "echo start…" (expressions)`},
	}, {
		name: "bare if condition, in single quotes",
		src: job(`runs-on: omnios
if: 'success() && github.ref = ''main'''
steps:
  - run: make`),
		want: []string{`wf.yml:5:34: unexpected symbol "=" in "success() && github.ref = 'main'" (expressions)`},
	}, {
		name: "status functions only in if, unknown context in env",
		src: job(`runs-on: omnios
env:
  A: ${{ failure() }}
  B: ${{ secret.TOKEN }}
steps:
  - if: failure()
    run: make`),
		want: []string{
			`wf.yml:6:14: function failure() is not available here in "${{ failure() }}" (expressions)`,
			`wf.yml:7:14: unknown context "secret" in "${{ secret.TOKEN }}" (expressions)`,
		},
	}, {
		name: "unclosed expression in a step name",
		src: job(`runs-on: omnios
steps:
  - name: build ${{ matrix.os
    run: make`),
		want: []string{`wf.yml:6:21: unclosed ${{: no matching }} in "build ${{ matrix.os" (expressions)`},
	}, {
		name: "unknown shells",
		src: `on: push
defaults:
  run:
    shell: zsh
jobs:
  build:
    runs-on: omnios
    steps:
      - run: make
        shell: fish -e
      - run: make
        shell: perl {0}
      - run: make
        shell: bash --noprofile --norc -eo pipefail {0}
      - run: make
        shell: python
`,
		want: []string{
			`wf.yml:4:12: unknown shell "zsh": use one of bash, sh, python, pwsh, powershell, or a command line with {0} for the script, such as "perl {0}" (defaults.run)`,
			`wf.yml:10:16: unknown shell "fish -e": use one of bash, sh, python, pwsh, powershell, or a command line with {0} for the script, such as "perl {0}" (jobs.<job_id>.steps[*].shell)`,
		},
	}, {
		name: "on is not checked; with and other strings are",
		src: `on:
  push:
    branches: ['${{ not an expression here }}']
jobs:
  build:
    runs-on: omnios
    steps:
      - uses: solstice-ci/kdl@v1
        with:
          path: ${{ github.workspace }}/w.kdl
          job: ${{ matrix.job ] }}
`,
		want: []string{`wf.yml:11:31: unexpected token "]" in "${{ matrix.job ] }}" (expressions)`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, "errors", parseErrors(tt.src), tt.want)
		})
	}
}

// TestUnknownLabelPositions: a label no catalog image has is placed at the
// label, in YAML and in KDL.
func TestUnknownLabelPositions(t *testing.T) {
	catalog := map[string]string{"omnios-r151056": "omnios-r151056", "omnios": "omnios-r151056", "solstice-test": "solstice-test"}
	tests := []struct {
		name, file, src string
		want            []string
	}{{
		name: "YAML list",
		file: "wf.yml",
		src: job(`runs-on: [self-hosted, omnios-r151058]
steps:
  - run: make`),
		want: []string{`wf.yml:4:28: run "build": runs-on [self-hosted, omnios-r151058]: no catalog image has label "omnios-r151058" (available: omnios-r151056 (omnios), solstice-test) (jobs.<job_id>.runs-on)`},
	}, {
		name: "YAML scalar and mapping",
		file: "wf.yml",
		src: `on: push
jobs:
  a:
    runs-on: solstice-tset
    steps: [{run: make}]
  b:
    runs-on:
      group: ci
      labels:
        - omnios
        - freebsd
    steps: [{run: make}]
`,
		want: []string{
			`wf.yml:4:14: run "a": runs-on [solstice-tset]: no catalog image has label "solstice-tset" (available: omnios-r151056 (omnios), solstice-test) (jobs.<job_id>.runs-on)`,
			`wf.yml:11:11: run "b": runs-on [omnios, freebsd]: no catalog image has label "freebsd" (available: omnios-r151056 (omnios), solstice-test) (jobs.<job_id>.runs-on)`,
		},
	}, {
		name: "KDL property and child",
		file: "workflow.kdl",
		src: `workflow {
  job id="build" runs_on="omnios" {
    step "make"
  }
  job id="port" {
    runs_on "solstice-test" "freebsd-14"
    step "make"
  }
}
`,
		want: []string{`workflow.kdl:6:29: run "port (freebsd-14)": runs-on [freebsd-14]: no catalog image has label "freebsd-14" (available: omnios-r151056 (omnios), solstice-test) (jobs.<job_id>.runs-on)`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w *Workflow
			var err error
			if strings.HasSuffix(tt.file, ".kdl") {
				w, err = ParseKDL([]byte(tt.src), tt.file, tt.file)
			} else {
				w, err = Parse([]byte(tt.src), tt.file)
			}
			if err != nil {
				t.Fatal(err)
			}
			runs, err := w.Runs()
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.ResolveLabels(runs, catalog)
			if err == nil {
				t.Fatal("no error")
			}
			equalLines(t, "errors", strings.Split(err.Error(), "\n"), tt.want)
		})
	}
}
