package runner

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/artifactfake"
	"github.com/solstice-ci/solstice/internal/contract"
)

// artifactService serves a strict artifact service for one test job.
func artifactService(t *testing.T) (*artifactfake.Server, string) {
	fs := artifactfake.New(t.TempDir(), "7", "3")
	srv := httptest.NewServer(fs)
	fs.BaseURL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		for _, p := range fs.Problems() {
			t.Errorf("artifact service: %s", p)
		}
	})
	return fs, srv.URL
}

// artifactPlan is a plan whose job env points at the service and which
// lists the runtime token as a secret, as the shims will send it.
func artifactPlan(url string, steps ...contract.Step) *contract.Plan {
	p := newPlan(steps...)
	p.Env = []contract.EnvVar{{Name: "ACTIONS_RESULTS_URL", Value: url}}
	p.Secrets = []string{"ACTIONS_RUNTIME_TOKEN"}
	return p
}

func TestArtifactRoundTrip(t *testing.T) {
	fs, url := artifactService(t)
	p := artifactPlan(url,
		runStep(`mkdir -p out/sub out/.hidden && head -c 300000 /dev/urandom > out/sub/data.bin && echo hi > out/a.txt && echo no > out/skip.txt && echo h > out/.hidden/h
(cd out && find . -type f ! -name skip.txt ! -path './.hidden/*' | sort | xargs sha256sum) > "$RUNNER_TEMP/want"`),
		contract.Step{ID: "up", Uses: "actions/upload-artifact@v4", With: contract.Strings{"name": "build", "path": "out/\n!out/skip.txt", "retention-days": "2"}},
		contract.Step{ID: "down", Uses: "actions/download-artifact@v4", With: contract.Strings{"name": "build", "path": "got"}},
		runStep(`cd got && find . -type f | sort | xargs sha256sum > "$RUNNER_TEMP/got" && diff "$RUNNER_TEMP/want" "$RUNNER_TEMP/got" && echo identical
echo "id=${{ steps.up.outputs.artifact-id }} digest=${{ steps.up.outputs.artifact-digest }} url=${{ steps.up.outputs.artifact-url }} path=${{ steps.down.outputs.download-path }}"`),
	)
	p.Contexts["github"] = []byte(`{"repository":"o/r","sha":"abc","ref":"refs/heads/main","server_url":"https://forge.example","run_id":"9"}`)
	r := runJob(t, p, withSecrets(map[string]string{"ACTIONS_RUNTIME_TOKEN": fs.RuntimeToken()}))
	for i := range 4 {
		r.expect(i, contract.Success, contract.Success)
	}
	a, ok := fs.Artifact("build")
	if !ok || a.Final == "" || a.ExpiresAt == "" {
		t.Fatalf("artifact at the forge: %+v", a)
	}
	out := r.output(3)
	if !strings.Contains(out, "identical") || !strings.Contains(out, "id=1 digest=") ||
		!strings.Contains(out, "url=https://forge.example/o/r/actions/runs/9/artifacts/1 ") {
		t.Errorf("compare step: %q", out)
	}
	if !strings.Contains(out, "path="+filepath.Join(r.job.workspace, "got")) {
		t.Errorf("download-path missing: %q", out)
	}
	if strings.Contains(r.raw(), fs.RuntimeToken()) {
		t.Error("the runtime token is in the events")
	}
	if sys := r.system(1); !strings.Contains(sys, "there will be 2 file(s) uploaded") {
		t.Errorf("upload log: %q", sys)
	}
}

func TestArtifactDownloadAll(t *testing.T) {
	fs, url := artifactService(t)
	p := artifactPlan(url,
		runStep(`mkdir a b && echo 1 > a/one && echo 2 > b/two`),
		contract.Step{Uses: "actions/upload-artifact@v4", With: contract.Strings{"name": "bin-a", "path": "a/one"}},
		contract.Step{Uses: "actions/upload-artifact@v4", With: contract.Strings{"name": "bin-b", "path": "b"}},
		contract.Step{Uses: "actions/upload-artifact@v4", With: contract.Strings{"name": "other", "path": "a"}},
		contract.Step{Uses: "actions/download-artifact@v4", With: contract.Strings{"pattern": "bin-*", "path": "each"}},
		contract.Step{Uses: "actions/download-artifact@v4", With: contract.Strings{"pattern": "bin-*", "path": "merged", "merge-multiple": "true"}},
		runStep(`find each merged -type f | sort`),
	)
	r := runJob(t, p, withSecrets(map[string]string{"ACTIONS_RUNTIME_TOKEN": fs.RuntimeToken()}))
	r.expect(6, contract.Success, contract.Success)
	want := "each/bin-a/one\neach/bin-b/two\nmerged/one\nmerged/two"
	if got := r.output(6); got != want {
		t.Errorf("downloaded files:\n%s\nwant:\n%s", got, want)
	}
}

func TestArtifactStepFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []contract.Step
		token bool
		want  string // in the failing last step's error
	}{
		{"no files, error", []contract.Step{{Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "nothing/", "if-no-files-found": "error"}}},
			true, "No files were found with the provided path: nothing/"},
		{"name taken", []contract.Step{
			{Run: "echo x > f"},
			{Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "f"}},
			{Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "f"}},
		}, true, `an artifact named "artifact" already exists`},
		{"missing artifact", []contract.Step{{Uses: "actions/download-artifact@v4", With: contract.Strings{"name": "nope"}}},
			true, "Artifact not found for name: nope"},
		{"no runtime token", []contract.Step{{Run: "echo x > f"}, {Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "f"}}},
			false, "ACTIONS_RUNTIME_TOKEN"},
		{"bad level", []contract.Step{{Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "f", "compression-level": "11"}}},
			true, "compression-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, url := artifactService(t)
			secrets := map[string]string{}
			if tc.token {
				secrets["ACTIONS_RUNTIME_TOKEN"] = fs.RuntimeToken()
			}
			r := runJob(t, artifactPlan(url, tc.steps...), withSecrets(secrets))
			last := len(tc.steps) - 1
			r.expect(last, contract.Failure, contract.Failure)
			if log := strings.Join(r.lines(last), "\n"); !strings.Contains(log, tc.want) {
				t.Errorf("log of the failed step: %q, want %q", log, tc.want)
			}
		})
	}
}

func TestArtifactNoFilesWarns(t *testing.T) {
	fs, url := artifactService(t)
	r := runJob(t, artifactPlan(url, contract.Step{Uses: "actions/upload-artifact@v4", With: contract.Strings{"path": "nothing"}}),
		withSecrets(map[string]string{"ACTIONS_RUNTIME_TOKEN": fs.RuntimeToken()}))
	r.expect(0, contract.Success, contract.Success)
	if _, ok := fs.Artifact("artifact"); ok {
		t.Error("an artifact was created without files")
	}
}

func TestUploadSearch(t *testing.T) {
	ws := t.TempDir()
	for _, f := range []string{"out/a.txt", "out/sub/b.txt", "out/.git/config", "out/sub/.env", "logs/x.log", "logs/deep/y.log", "top.txt"} {
		writeFile(t, ws, f, "x", 0o644)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(ws, "out", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(ws, "out", "dirlink")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec   string
		hidden bool
		want   []string
	}{
		{"out/", false, []string{"a.txt", "link", "sub/b.txt"}},
		{"out", true, []string{".git/config", "a.txt", "link", "sub/.env", "sub/b.txt"}},
		{"top.txt", false, []string{"top.txt"}},
		{"out/sub/b.txt\ntop.txt", false, []string{"out/sub/b.txt", "top.txt"}},
		{"logs/**/*.log", false, []string{"deep/y.log", "x.log"}},
		{"logs/*.log\n# comment\n!logs/x.log", false, nil},
		{"out/\nlogs/\n!**/sub/**", false, []string{"logs/deep/y.log", "logs/x.log", "out/a.txt", "out/link"}},
		{filepath.Join(ws, "logs") + "/deep", false, []string{"y.log"}},
		{"missing/", false, nil},
	} {
		files, err := uploadSearch(ws, "/home/none", tc.spec, tc.hidden)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		var names []string
		for _, f := range files {
			names = append(names, f.Name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("%q (hidden %v): %q, want %q", tc.spec, tc.hidden, names, tc.want)
		}
	}
}
