package workflow

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	kdlwf "github.com/solstice-ci/solstice/guest/kdl/workflow"
)

func TestParseKDLOneRunPerRunsOn(t *testing.T) {
	src := `workflow name="CI" {
    job id="build" {
        runs_on "omnios-r151056" "freebsd-14"
        step name="Build" run="gmake"
    }
    job id="lint" runs_on="linux" {
        step "true"
    }
}`
	w, err := ParseKDL([]byte(src), ".solstice/workflow.kdl", ".solstice/workflow.kdl")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := w.Runs()
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, r := range runs {
		got = append(got, append([]string{r.JobID, r.Name}, r.RunsOn...))
	}
	want := [][]string{
		{"build", "build (omnios-r151056)", "omnios-r151056"},
		{"build", "build (freebsd-14)", "freebsd-14"},
		{"lint", "lint", "linux"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("runs = %q, want %q", got, want)
	}
	for _, r := range runs {
		if len(r.Steps) != 2 || !r.Steps[0].IsCheckout() || !r.Steps[1].IsKDL() {
			t.Fatalf("run %q steps = %+v, want checkout then the KDL action", r.Name, r.Steps)
		}
		with := map[string]string{}
		for _, p := range r.Steps[1].With {
			with[p.Name] = p.Value
		}
		if with["path"] != ".solstice/workflow.kdl" || with["job"] != r.JobID {
			t.Errorf("run %q: KDL step with = %v", r.Name, with)
		}
	}
	if runs[0].Strategy.FailFast {
		t.Error("one OS failing must not cancel the others")
	}
}

// TestParseKDLQuotesValues: labels and names go into the generated YAML
// as quoted strings, so none can add keys to it.
func TestParseKDLQuotesValues(t *testing.T) {
	src := "workflow name=\"x\\n  evil: 1\" {\n job id=a runs_on=\"l: {x}\" { step run=make }\n}"
	w, err := ParseKDL([]byte(src), "w.kdl", "ci/w.kdl")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := w.Runs()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !reflect.DeepEqual(runs[0].RunsOn, []string{"l: {x}"}) {
		t.Errorf("runs = %+v", runs)
	}
}

func TestParseKDLErrorsHavePositions(t *testing.T) {
	_, err := ParseKDL([]byte("workflow {\n  job id=a {\n    step run=x\n  }\n}"), ".solstice/workflow.kdl", ".solstice/workflow.kdl")
	var kerr *kdlwf.Error
	if !errors.As(err, &kerr) || !strings.HasPrefix(err.Error(), ".solstice/workflow.kdl:2:3: ") {
		t.Errorf("err = %v, want a KDL error with file:line:col", err)
	}
}

func TestParseFileByExtension(t *testing.T) {
	repo := t.TempDir()
	for _, d := range []string{".git", ".solstice"} {
		if err := os.Mkdir(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kdlPath := filepath.Join(repo, ".solstice", "workflow.kdl")
	os.WriteFile(kdlPath, []byte("workflow {\n job id=a { runs_on x y\n step run=make }\n}"), 0o644)
	w, err := ParseFile(kdlPath)
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := w.Runs()
	if len(runs) != 2 || runs[0].Steps[1].With[0].Value != ".solstice/workflow.kdl" {
		t.Errorf("runs = %+v", runs)
	}
	bad := filepath.Join(repo, "bad.kdl")
	os.WriteFile(bad, []byte("workflow {\n job id=a runs_on=x { stpe run=make }\n}"), 0o644)
	if _, err := ParseFile(bad); err == nil || !strings.Contains(err.Error(), "bad.kdl:2:23: ") {
		t.Errorf("err = %v, want file:line:col", err)
	}
}
