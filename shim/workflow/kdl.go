package workflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	kdlwf "github.com/solstice-ci/solstice/guest/kdl/workflow"
)

// KDLRunsOnKey is the matrix key a KDL job with several runs_on labels is
// expanded over, so each label is one run (named "job (label)").
const KDLRunsOnKey = "runs_on"

// ParseKDL reads a Solstice KDL workflow (.solstice/workflow.kdl) as the
// Actions workflow it means: per KDL job, one job that checks the
// repository out and runs that KDL job with the built-in solstice-ci/kdl
// action, which executes it in the guest as the KDL file says. Several
// runs_on labels become a matrix over KDLRunsOnKey (fail-fast off: the
// OSes are independent), so Runs gives one run per label. repoPath is the
// file's path inside the repository, which the guest reads it from.
// Errors in the KDL file are *kdlwf.Error, with file:line:col.
func ParseKDL(data []byte, filename, repoPath string) (*Workflow, error) {
	kw, err := kdlwf.Parse(bytes.NewReader(data), filename)
	if err != nil {
		return nil, err
	}
	w, err := Parse(kdlAsYAML(kw, repoPath), filename)
	if err != nil {
		return nil, fmt.Errorf("%s: the KDL workflow as an Actions workflow: %w", filename, err)
	}
	kdlPositions(w, kw)
	return w, nil
}

// kdlPositions points the jobs' runs-on at the KDL file, so a message
// about a label (no such image) names the line the user wrote.
func kdlPositions(w *Workflow, kw *kdlwf.Workflow) {
	for _, kj := range kw.Jobs {
		j := w.Job(kj.ID)
		if j == nil || len(kj.RunsOnPos) == 0 {
			continue
		}
		j.RunsOn.Pos = Pos(kj.RunsOnPos[0])
		j.RunsOn.LabelPos = map[string]Pos{}
		for i, l := range kj.RunsOn {
			j.RunsOn.LabelPos[l] = Pos(kj.RunsOnPos[i])
		}
	}
}

// kdlAsYAML writes the Actions workflow for kw. Every value is written as
// a JSON string, which YAML reads as the same string, so no label, id or
// path can change the document's structure.
func kdlAsYAML(kw *kdlwf.Workflow, repoPath string) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b bytes.Buffer
	if kw.Name != "" {
		fmt.Fprintf(&b, "name: %s\n", q(kw.Name))
	}
	b.WriteString("on: push\njobs:\n")
	for _, j := range kw.Jobs {
		fmt.Fprintf(&b, "  %s:\n", q(j.ID))
		if len(j.RunsOn) == 1 {
			fmt.Fprintf(&b, "    runs-on: %s\n", q(j.RunsOn[0]))
		} else {
			labels, _ := json.Marshal(j.RunsOn)
			fmt.Fprintf(&b, "    runs-on: ${{ matrix.%s }}\n    strategy:\n      fail-fast: false\n      matrix:\n        %s: %s\n",
				KDLRunsOnKey, KDLRunsOnKey, labels)
		}
		fmt.Fprintf(&b, "    steps:\n      - uses: actions/checkout@v4\n      - uses: %s@v1\n        with:\n          path: %s\n          job: %s\n",
			KDLAction, q(repoPath), q(j.ID))
	}
	return b.Bytes()
}

// ParseFile reads a workflow file by its extension: .kdl is a Solstice KDL
// workflow (ParseKDL, its repository path found from the enclosing git
// work tree), anything else Actions YAML.
func ParseFile(path string) (*Workflow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if filepath.Ext(path) != ".kdl" {
		return Parse(data, path)
	}
	return ParseKDL(data, path, repoRelative(path))
}

// repoRelative is path relative to the nearest enclosing directory with a
// .git entry, in slash form; the cleaned path itself when there is none.
func repoRelative(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.ToSlash(filepath.Clean(path))
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			rel, _ := filepath.Rel(dir, abs)
			return filepath.ToSlash(rel)
		}
		if dir == filepath.Dir(dir) {
			return filepath.ToSlash(filepath.Clean(path))
		}
	}
}
