//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestJobspecsValidate runs `nomad job validate` on every jobspec we ship.
func TestJobspecsValidate(t *testing.T) {
	files, _ := filepath.Glob("../jobspecs/*.nomad.hcl")
	labels, _ := filepath.Glob("../jobspecs/labels/*.nomad.hcl")
	files = append(files, labels...)
	if len(labels) == 0 {
		t.Fatal("no label jobspecs found under jobspecs/labels")
	}
	n := StartNomad(t, WithRawExec())
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := n.nomadCLI("job", "validate", f)
			if err != nil || !strings.Contains(out, "Job validation successful") {
				t.Fatalf("nomad job validate %s: %v\n%s", f, err, out)
			}
		})
	}
}
