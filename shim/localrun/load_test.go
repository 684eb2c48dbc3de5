package localrun

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestLoadKDLRunsOncePerOS: solstice run reads a .solstice/workflow.kdl
// job naming two OSes as two runs, one per runs_on label, also when the
// job is picked with --job.
func TestLoadKDLRunsOncePerOS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".solstice")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "workflow.kdl")
	src := `workflow name="CI" {
    job id="build" {
        runs_on "omnios-r151056" "solstice-test"
        step name="Build" run="make"
    }
    job id="other" runs_on="solstice-test" {
        step "true"
    }
}`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		job  string
		want [][]string
	}{
		{"", [][]string{{"build", "omnios-r151056"}, {"build", "solstice-test"}, {"other", "solstice-test"}}},
		{"build", [][]string{{"build", "omnios-r151056"}, {"build", "solstice-test"}}},
	} {
		_, runs, err := load(Options{Workflow: path, Job: tc.job})
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		for _, r := range runs {
			got = append(got, append([]string{r.JobID}, r.RunsOn...))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--job %q: runs %q, want %q", tc.job, got, tc.want)
		}
	}
}
