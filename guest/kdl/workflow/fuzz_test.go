package workflow

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse decodes a KDL workflow as the agent does for a kdl step. Any
// error must be a positioned *Error. Inputs over 64 KiB are skipped: the
// file is a repository's hand-written .solstice/workflow.kdl.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`workflow name="CI" {
  job id="illumos-build" runs_on="illumos-latest" {
    setup path=".solstice/setup-illumos.sh"
    step name="Build" run="cargo build --workspace"
  }
}`,
		everyExtension,
		"workflow {\n  job id=a runs_on=l\n  job id=b runs_on=l\n  job id=a runs_on=l\n}",
		"workflow {\n  job id=x runs_on=l timeout=\"-5m\" {\n    step #true\n    step (sh)\"make\" wrokdir=b {\n      env \"1X\"=\"a\" A=1.5 B=#null\n    }\n  }\n}\nworkflow {}\n",
		"(ci)workflow nmae=\"CI\" \"arg\" { jobs id=a; env A; }",
		"// nothing",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 64<<10 {
			return
		}
		wf, err := Parse(strings.NewReader(src), ".solstice/workflow.kdl")
		if err != nil {
			var werr *Error
			if !errors.As(err, &werr) || werr.Line < 1 || werr.Col < 1 {
				t.Fatalf("error %#v is not a positioned *Error", err)
			}
			return
		}
		if len(wf.Jobs) == 0 {
			t.Fatalf("a workflow without jobs parsed")
		}
		for _, j := range wf.Jobs {
			if j.ID == "" || len(j.RunsOn) == 0 || j.Timeout < 0 {
				t.Fatalf("an invalid job parsed: %+v", j)
			}
		}
	})
}
