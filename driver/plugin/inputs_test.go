package plugin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// inputTask makes a task whose dir holds local/plan.json, runs setup in
// the task dir, then sets the config tc(dir) returns.
func (h *harness) inputTask(setup func(t *testing.T, dir string), tc func(dir string) TaskConfig) *drivers.TaskConfig {
	h.t.Helper()
	cfg := h.taskConfig(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
	dir := cfg.TaskDir().Dir
	if setup != nil {
		setup(h.t, dir)
	}
	c := tc(dir)
	c.Image, c.BootTimeout = "omnios", "10s"
	if err := cfg.EncodeConcreteDriverConfig(&c); err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

func plan(p string) func(string) TaskConfig {
	return func(string) TaskConfig { return TaskConfig{Plan: p} }
}

func withPlan(tc TaskConfig) func(string) TaskConfig {
	return func(string) TaskConfig { tc.Plan = "local/plan.json"; return tc }
}

func symlink(target, link string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		os.Remove(filepath.Join(dir, link))
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTaskInputsConfined: every path a task config names must resolve
// inside the task dir, and a bundle URL must be an allowed one. A refused
// input stops the task before anything is fetched or booted, with a
// message naming the field and why, also written for whoever follows the
// job.
func TestTaskInputsConfined(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(outside, []byte("host only"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(*testing.T, string)
		tc    func(dir string) TaskConfig
		want  string
	}{
		{"absolute plan outside the task dir", nil, plan("/var/lib/nomad/server/raft/raft.db"),
			`plan = "/var/lib/nomad/server/raft/raft.db": refused: an absolute path outside the task directory (give a path relative to it, such as "local/plan.json")`},
		{"secrets escaping with ..", nil, withPlan(TaskConfig{Secrets: "../../client/secret"}),
			`secrets = "../../client/secret": refused: the path leaves the task directory`},
		{"bundle escaping with .. after a real dir", nil, withPlan(TaskConfig{Bundle: "local/../../../x.bundle"}),
			`bundle = "local/../../../x.bundle": refused: the path leaves the task directory`},
		{"plan symlinked out", symlink(outside, "local/plan.json"), plan("local/plan.json"),
			`plan = "local/plan.json": refused: it leads through a symlink to ` + outside + `, outside the task directory`},
		{"a directory symlinked out", symlink(filepath.Dir(outside), "local/up"), withPlan(TaskConfig{Secrets: "local/up/host-secret"}),
			`secrets = "local/up/host-secret": refused: it leads through a symlink to ` + outside + `, outside the task directory`},
		{"missing plan", nil, plan("local/missing.json"),
			`plan = "local/missing.json": no such file in the task directory`},
		{"plan is a directory", nil, plan("local"), `plan = "local": refused: not a regular file`},
		{"file URL outside", nil, withPlan(TaskConfig{Bundle: "file:///etc/passwd"}),
			`bundle = "file:///etc/passwd": refused: an absolute path outside the task directory`},
		{"file URL of another host", nil, withPlan(TaskConfig{Bundle: "file://fileserver/x.bundle"}),
			`bundle = "file://fileserver/x.bundle": refused: a file URL must name this host`},
		{"cloud metadata", nil, withPlan(TaskConfig{Bundle: "http://169.254.169.254/latest/meta-data/iam/"}),
			`bundle = "http://169.254.169.254/latest/meta-data/iam/": refused: denied address: 169.254.169.254 is link-local`},
		{"host API on loopback", nil, withPlan(TaskConfig{Bundle: "http://127.0.0.1:4646/v1/acl/tokens"}),
			`bundle = "http://127.0.0.1:4646/v1/acl/tokens": refused: not on the allow-list: 127.0.0.1:4646/v1/acl/tokens is not matched by any of ` +
				`[127.0.0.1/bundle/, [::1]/bundle/, localhost/bundle/] (the operator allows hosts with bundle_hosts in the plugin config)`},
		{"prefix escaped with ..", nil, withPlan(TaskConfig{Bundle: "http://127.0.0.1:4646/bundle/../v1/kv"}),
			`refused: not on the allow-list: the path "/bundle/../v1/kv" is not clean`},
		{"host not allowed, token not shown", nil, withPlan(TaskConfig{Bundle: "https://evil.example/b.bundle?token=SECRET"}),
			`bundle = "https://evil.example/b.bundle?…": refused: not on the allow-list: evil.example:443/b.bundle is not matched`},
		{"other scheme", nil, withPlan(TaskConfig{Bundle: "ftp://mirror/x.bundle"}),
			`bundle = "ftp://mirror/x.bundle": refused: scheme "ftp" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			cfg := h.inputTask(tt.setup, tt.tc)
			_, _, err := h.d.StartTask(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), `task "build" config: `) {
				t.Fatalf("StartTask error = %v\nwant %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the refusal shows the URL's token: %v", err)
			}
			if calls := vms.calls(); len(calls) != 0 {
				t.Errorf("a refused task still made calls %q", calls)
			}
			if msg := infraError(t, cfg); !strings.Contains(msg, tt.want) {
				t.Errorf("infrastructure error event says %q, want %q", msg, tt.want)
			}
			assertNothingLeft(t, h, cfg)
		})
	}
}

// TestTaskInputsAccepted: paths inside the task dir, however written, are
// accepted and handed on resolved.
func TestTaskInputsAccepted(t *testing.T) {
	inTask := func(t *testing.T, dir string) {
		for _, f := range []string{"local/real.json", "local/repo.bundle", "secrets/job.json"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		symlink("real.json", "local/plan.json")(t, dir)
	}
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg := h.inputTask(inTask, func(dir string) TaskConfig {
		return TaskConfig{
			Plan:    "local/plan.json", // a symlink that stays inside
			Secrets: filepath.Join(dir, "secrets/job.json"),
			Bundle:  "file://" + filepath.Join(dir, "local/repo.bundle"),
		}
	})
	if _, _, err := h.d.StartTask(cfg); err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	vms.waitForCall(t, "launch")
	dir := cfg.TaskDir().Dir
	f := vms.launched[0]
	if f.Plan != filepath.Join(dir, "local/real.json") || f.Secrets != filepath.Join(dir, "secrets/job.json") ||
		f.Bundle != filepath.Join(dir, "local/repo.bundle") {
		t.Errorf("job files = %+v", f)
	}
}

// bundleServer serves body under /bundle/, as solstice run does.
func bundleServer(t *testing.T, body []byte) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/bundle/", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.Handle("/redirect/", http.RedirectHandler("http://169.254.169.254/latest/meta-data/", http.StatusFound))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestBundleDownload: solstice run's loopback bundle URL is fetched
// host-side by default; an oversized bundle or a redirect off the
// allow-list fails the start, naming the cause.
func TestBundleDownload(t *testing.T) {
	bundle := bytes.Repeat([]byte("git bundle "), 200_000) // 2.2 MB
	srv := bundleServer(t, bundle)
	tests := []struct {
		name, path, maxSize, want string
	}{
		{"solstice run's URL", "/bundle/0123abcd/solstice-run-1.bundle", "", ""},
		{"over max_bundle_size", "/bundle/0123abcd/solstice-run-1.bundle", "1MiB",
			`over the size cap of 1048576 bytes (max_bundle_size = "1MiB" in the plugin config)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			if tt.maxSize != "" {
				h.d.cfg().MaxBundleSize = tt.maxSize
				if err := h.d.cfg().Validate(); err != nil {
					t.Fatal(err)
				}
			}
			cfg := h.inputTask(nil, withPlan(TaskConfig{Bundle: srv.URL + tt.path}))
			_, _, err := h.d.StartTask(cfg)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("StartTask error = %v, want %q", err, tt.want)
				}
				assertNothingLeft(t, h, cfg)
				return
			}
			if err != nil {
				t.Fatalf("StartTask: %v", err)
			}
			vms.waitForCall(t, "launch")
			got, err := os.ReadFile(vms.launched[0].Bundle)
			if err != nil || !bytes.Equal(got, bundle) {
				t.Fatalf("downloaded bundle: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestBundleRedirectToMetadata: an allowed server cannot bounce the driver
// to cloud metadata.
func TestBundleRedirectToMetadata(t *testing.T) {
	srv := bundleServer(t, nil)
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	h.d.cfg().BundleHosts = []string{strings.TrimPrefix(srv.URL, "http://")}
	if err := h.d.cfg().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := h.inputTask(nil, withPlan(TaskConfig{Bundle: srv.URL + "/redirect/x"}))
	_, _, err := h.d.StartTask(cfg)
	want := "denied address: 169.254.169.254 is link-local"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "fetch the repository bundle") {
		t.Fatalf("StartTask error = %v, want %q", err, want)
	}
	assertNothingLeft(t, h, cfg)
}
