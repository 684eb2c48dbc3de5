package workflow

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/guest/kdl"
)

const file = ".solstice/workflow.kdl"

func TestParseValid(t *testing.T) {
	tests := []struct {
		name, in string
		want     *Workflow
	}{
		{
			name: "the real example",
			in: `workflow name="CI" {
  job id="illumos-build" runs_on="illumos-latest" {
    setup path=".solstice/setup-illumos.sh"
    step name="Build" run="cargo build --workspace"
  }
}`,
			want: &Workflow{Name: "CI", Jobs: []Job{{
				ID: "illumos-build", RunsOn: []string{"illumos-latest"},
				Setup: []string{".solstice/setup-illumos.sh"},
				Steps: []Step{{Name: "Build", Run: "cargo build --workspace"}},
			}}},
		},
		{
			name: "every extension",
			in:   everyExtension,
			want: &Workflow{Name: "CI", Env: map[string]string{"A": "1", "B": "2", "C": "true"}, Jobs: []Job{
				{
					ID: "build", RunsOn: []string{"omnios"}, Workdir: "src", Timeout: 90 * time.Minute,
					Env:   map[string]string{"A": "job"},
					Setup: []string{"one.sh", "two.sh"},
					Steps: []Step{
						{Name: "Build", Run: "make\nmake test", Workdir: "sub", Timeout: 90 * time.Second,
							Env: map[string]string{"X": "later", "Y": ""}},
						{Run: "echo argument"},
					},
				},
				{ID: "_lint-2", RunsOn: []string{"linux"}, Steps: []Step{{Run: "lint"}}},
			}},
		},
		{
			name: "runs_on child: one run per label",
			in:   "workflow {\n job id=a runs_on=omnios {\n  runs_on freebsd-14 openbsd\n  step run=make\n }\n}",
			want: &Workflow{Jobs: []Job{{ID: "a", RunsOn: []string{"omnios", "freebsd-14", "openbsd"}, Steps: []Step{{Run: "make"}}}}},
		},
		{
			name: "nameless workflow with only setup",
			in:   "workflow {\n job id=a runs_on=b { setup path=s.sh }\n}",
			want: &Workflow{Jobs: []Job{{ID: "a", RunsOn: []string{"b"}, Setup: []string{"s.sh"}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), file)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for i := range got.Jobs { // label positions: TestRunsOnPositions
				if len(got.Jobs[i].RunsOnPos) != len(got.Jobs[i].RunsOn) {
					t.Errorf("job %s: %d label positions for %d labels", got.Jobs[i].ID, len(got.Jobs[i].RunsOnPos), len(got.Jobs[i].RunsOn))
				}
				got.Jobs[i].RunsOnPos = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

// wrap puts a job body inside a workflow; the job node is on line 2 and
// the first body line is line 3.
func wrap(jobProps, body string) string {
	return "workflow name=\"CI\" {\n  job " + jobProps + " {\n" + body + "\n  }\n}\n"
}

func TestParseErrors(t *testing.T) {
	const ok = `id="x" runs_on="l"`
	tests := []struct {
		name, in, want string
	}{
		// Syntax and document level.
		{"syntax error", "workflow {\n  job id=\"x\" runs_on=\"l\" {\n    step name==1\n  }\n}",
			`3:15: expected a value after "=", found "="`},
		{"empty file", "// nothing", `1:1: no workflow node`},
		{"unknown top-level node", "workflow_ {}\n", `1:1: unknown top-level node "workflow_" (did you mean "workflow"?) (a workflow file holds one workflow node)`},
		{"two workflows", wrap(ok, "step run=a") + "workflow {}\n", `6:1: second workflow node (the first is at line 1); a file holds one workflow`},
		{"no jobs", "workflow name=\"CI\"", `1:1: workflow has no job`},

		// The workflow node.
		{"workflow typo", "workflow nmae=\"CI\" {}", `1:10: workflow: unknown property "nmae" (did you mean "name"?)`},
		{"workflow argument", "workflow \"CI\" {}", `1:10: workflow: unexpected argument CI (write name="...")`},
		{"workflow unknown child", "workflow {\n  jobs id=a\n}", `2:3: workflow: unknown node "jobs" (did you mean "job"?)`},
		{"workflow empty name", "workflow name=\"\" {}", `1:15: workflow: name must not be empty`},
		{"type annotation", "(ci)workflow {}", `1:1: workflow: type annotation (ci) has no meaning in a workflow file`},

		// Jobs.
		{"brief example", "workflow name=\"CI\" {\n  job id=\"x\" \\\n    runs_on=\"l\" \\\n    runson=\"l\" {\n    step run=a\n  }\n}",
			`4:5: job "x": unknown property "runson" (did you mean "runs_on"?)`},
		{"dashed name", wrap(`id="x" runs-on="l"`, "step run=a"), `2:14: job "x": unknown property "runs-on" (did you mean "runs_on"?)`},
		{"unrelated name", wrap(ok+" color=red", "step run=a"), `2:26: job "x": unknown property "color"`},
		{"missing id", wrap(`runs_on="l"`, "step run=a"), `2:3: job: missing property "id"`},
		{"missing runs_on", wrap(`id="x"`, "step run=a"), `2:3: job "x": missing property "runs_on" (or a child runs_on "label" ...)`},
		{"empty runs_on child", wrap(`id="x"`, "    runs_on\n    step run=a"), `3:5: job "x": runs_on: name at least one label`},
		{"repeated label", wrap(ok, "    runs_on m l"), `3:15: job "x": runs_on: runs_on label "l" is named twice`},
		{"runs_on child not a string", wrap(`id="x"`, "    runs_on 5"), `3:13: job "x": runs_on: runs_on must be a string, found integer 5`},
		{"id not a string", wrap(`id=1 runs_on="l"`, "step run=a"), `2:10: job: id must be a string, found integer 1`},
		{"bad id", wrap(`id="a b" runs_on="l"`, "step run=a"), `2:10: job "a b": invalid id: use letters, digits, "-" and "_", starting with a letter or "_"`},
		{"job argument", wrap(`build runs_on="l"`, "step run=a"), `2:7: job: unexpected argument build (write id="..." runs_on="...")`},
		{"duplicate id", "workflow {\n  job id=a runs_on=l\n  job id=b runs_on=l\n  job id=a runs_on=l\n}",
			`4:10: duplicate job id "a" (first used at line 2)`},
		{"unknown job child", wrap(ok, "    stpe run=a"), `3:5: job "x": unknown node "stpe" (did you mean "step"?)`},
		{"bad duration", wrap(ok+` timeout="30 minutes"`, "step run=a"), `2:34: job "x": timeout "30 minutes" is not a duration (write Go syntax such as "90s", "30m" or "1h30m")`},
		{"integer timeout", wrap(ok+` timeout=30`, "step run=a"), `2:34: job "x": timeout must be a string, found integer 30`},
		{"negative timeout", wrap(ok+` timeout="-5m"`, "step run=a"), `2:34: job "x": timeout "-5m" must be positive`},
		{"blank workdir", wrap(ok+` workdir=" "`, "step run=a"), `2:34: job "x": workdir must not be empty`},

		// Setup.
		{"setup without path", wrap(ok, "    setup"), `3:5: job "x": setup: missing property "path"`},
		{"setup argument", wrap(ok, `    setup "s.sh"`), `3:11: job "x": setup: unexpected argument s.sh (write path="...")`},
		{"setup children", wrap(ok, "    setup path=s { x }"), `3:20: job "x": setup: setup takes no children block, found node "x"`},

		// Steps.
		{"step without run", wrap(ok, `    step name="Build"`), `3:5: job "x": step "Build": missing property "run" (or give the script as the argument)`},
		{"unnamed step", wrap(ok, "    step run=a\n    step workdir=w"), `4:5: job "x": step 2: missing property "run" (or give the script as the argument)`},
		{"script twice", wrap(ok, `    step "make" run="make"`), `3:10: job "x": step 1: the script is given twice, as run= and as an argument`},
		{"two arguments", wrap(ok, `    step "make" "test"`), `3:17: job "x": step 1: unexpected argument test`},
		{"empty run", wrap(ok, `    step run=""`), `3:14: job "x": step 1: run must not be empty`},
		{"run not a string", wrap(ok, `    step #true`), `3:10: job "x": step 1: the script must be a string, found boolean #true`},
		{"step typo", wrap(ok, `    step run=a wrokdir=b`), `3:16: job "x": step 1: unknown property "wrokdir" (did you mean "workdir"?)`},
		{"step bad timeout", wrap(ok, `    step run=a timeout="5"`), `3:24: job "x": step 1: timeout "5" is not a duration (write Go syntax such as "90s", "30m" or "1h30m")`},
		{"step unknown child", wrap(ok, "    step run=a {\n      setup path=s\n    }"), `4:7: job "x": step 1: unknown node "setup"`},
		{"typed argument", wrap(ok, `    step (sh)"make"`), `3:10: job "x": step 1: type annotation (sh) has no meaning in a workflow file`},

		// Env.
		{"env bad name", wrap(ok, `    env "1X"="a"`), `3:9: job "x": env: invalid variable name "1X": use letters, digits and "_", not starting with a digit`},
		{"env null", wrap(ok, `    env A=#null`), `3:11: job "x": env: A must be a string, integer or boolean, found null #null`},
		{"env float", wrap(ok, `    env A=1.5`), `3:11: job "x": env: A must be a string, integer or boolean, found float 1.5`},
		{"env argument", "workflow {\n  env A\n  job id=x runs_on=l\n}", `2:7: workflow: env: unexpected argument A`},
		{"env children", wrap(ok, "    step run=a {\n      env { A }\n    }"), `4:13: job "x": step 1: env: env takes no children block, found node "A"`},
		{"env typed value", wrap(ok, `    env A=(t)"a"`), `3:11: job "x": env: type annotation (t) has no meaning in a workflow file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in), file)
			want := file + ":" + tt.want
			if err == nil {
				t.Fatalf("parsed, want error %s", want)
			}
			if err.Error() != want {
				t.Errorf("error\n got  %s\n want %s", err, want)
			}
			var werr *Error
			if !errors.As(err, &werr) || werr.File != file || werr.Line < 1 || werr.Col < 1 {
				t.Errorf("error %#v is not a positioned *Error", err)
			}
		})
	}
}

func TestSyntaxErrorUnwraps(t *testing.T) {
	_, err := Parse(strings.NewReader("workflow {"), file)
	var kerr *kdl.Error
	if !errors.As(err, &kerr) || kerr.Line != 1 || kerr.Column != 10 {
		t.Fatalf("error %v does not unwrap to the *kdl.Error at 1:10", err)
	}
}

func TestSuggest(t *testing.T) {
	allowed := []string{"id", "runs_on", "workdir", "timeout"}
	tests := map[string]string{
		"runson":  ` (did you mean "runs_on"?)`,
		"RUNS-ON": ` (did you mean "runs_on"?)`,
		"timeuot": ` (did you mean "timeout"?)`,
		"ix":      ` (did you mean "id"?)`,
		"x":       ``,
		"color":   ``,
	}
	for in, want := range tests {
		if got := suggest(in, allowed); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// everyExtension uses every extension of the KDL workflow format; the
// fuzz target starts from it too.
const everyExtension = `workflow name="CI" {
    env A="1" B=2 C=#true
    job id="build" runs_on="omnios" workdir="src" timeout="1h30m" {
        env A="job"
        setup path="one.sh"
        setup path="two.sh"
        step name="Build" run="""
            make
            make test
            """ workdir="sub" timeout="90s" {
            env X="step"
            env X="later" Y=""
        }
        step "echo argument"
    }
    job id="_lint-2" runs_on="linux" { step run="lint"; }
}`

func TestRunsOnPositions(t *testing.T) {
	in := "workflow {\n  job id=a runs_on=\"omnios\" {\n    runs_on \"freebsd-14\" \"linux\"\n    step \"make\"\n  }\n}"
	got, err := Parse(strings.NewReader(in), file)
	if err != nil {
		t.Fatal(err)
	}
	want := []kdl.Pos{{Line: 2, Col: 20}, {Line: 3, Col: 13}, {Line: 3, Col: 26}}
	if !reflect.DeepEqual(got.Jobs[0].RunsOnPos, want) {
		t.Fatalf("positions %v, want %v", got.Jobs[0].RunsOnPos, want)
	}
}
