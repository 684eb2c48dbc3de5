//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/shim/nomad"
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
			args := []string{"job", "validate"}
			if src, _ := os.ReadFile(f); strings.Contains(string(src), `variable "forgejo_url"`) {
				args = append(args, "-var", "forgejo_url=https://forge.example.org/")
			}
			out, err := n.nomadCLI(append(args, f)...)
			if err != nil || !strings.Contains(out, "Job validation successful") {
				t.Fatalf("nomad job validate %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestJobsSyncAndCatalog registers the label parent jobs and reads the
// runs-on catalog back from Nomad, aliases included. solstice jobs sync
// leaves the test label out unless asked (-test-labels).
func TestJobsSyncAndCatalog(t *testing.T) {
	n := StartNomad(t, WithRawExec())
	ctx := testContext(t, time.Minute)
	cli := exec.CommandContext(ctx, filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "jobs", "sync", "-address", n.Addr, "-dir", "../jobspecs/labels")
	out, err := cli.CombinedOutput()
	t.Logf("solstice jobs sync:\n%s", out)
	if err != nil || !strings.Contains(string(out), "skipped solstice-solstice-test (runs-on: solstice-test)") {
		t.Fatalf("solstice jobs sync without -test-labels: %v, want the test label skipped", err)
	}
	cat, err := (&nomad.Client{API: n.API}).Catalog(ctx)
	if err != nil || cat["omnios-r151056"] == "" || cat["solstice-test"] != "" {
		t.Fatalf("catalog after jobs sync without -test-labels: %v %v, want omnios-r151056 and no solstice-test", cat, err)
	}

	files, err := nomad.ParentFiles("../jobspecs/labels")
	if err != nil {
		t.Fatal(err)
	}
	synced, err := (&nomad.Client{API: n.API}).Sync(ctx, files)
	if err != nil || len(synced) != len(files) {
		t.Fatalf("sync: %v (%d of %d)", err, len(synced), len(files))
	}
	cat, err = (&nomad.Client{API: n.API}).Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"solstice-test": "solstice-test", "debian-test": "solstice-test",
		"omnios-r151056": "omnios-r151056",
	} {
		if cat[name] != want {
			t.Errorf("catalog[%q] = %q, want %q (catalog %v)", name, cat[name], want, cat)
		}
	}

	bad := filepath.Join(t.TempDir(), "web.nomad.hcl")
	os.WriteFile(bad, []byte(`job "solstice-web" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}`), 0o644)
	if _, err := (&nomad.Client{API: n.API}).Sync(ctx, []string{bad}); err == nil || !strings.Contains(err.Error(), "not a Solstice parent job") {
		t.Fatalf("syncing a non-parent job: %v", err)
	}
}
