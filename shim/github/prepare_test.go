package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

func loadJob(t *testing.T) *protocol.JobMessage {
	t.Helper()
	raw, err := os.ReadFile("testdata/job.json")
	if err != nil {
		t.Fatal(err)
	}
	var m protocol.JobMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m.Raw = raw
	return &m
}

func TestPrepare(t *testing.T) {
	req, err := prepare(loadJob(t), "omnios-r151056", "https://github.com/octo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(req.Plan, []byte("hunter2")) || bytes.Contains(req.Plan, []byte("ghs_jobtoken")) {
		t.Error("a secret value is in the plan payload")
	}
	want := map[string]string{"MY_SECRET": "hunter2", "GITHUB_TOKEN": "ghs_jobtoken"}
	if len(req.Secrets) != len(want) || req.Secrets["MY_SECRET"] != "hunter2" || req.Secrets["GITHUB_TOKEN"] != "ghs_jobtoken" {
		t.Errorf("secrets = %v, want %v", req.Secrets, want)
	}
	m := req.Meta
	if m.Forge != "github" || m.TaskID != "f4a0b1c2-d3e4-5f60-7182-93a4b5c6d7e8" || m.Repository != "octo/illumos-app" || m.Run != "123456789" || m.JobName != "build (amd64)" {
		t.Errorf("meta = %+v", m)
	}
	p, err := contract.DecodePlanAuto(bytes.NewReader(req.Plan))
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
}

func checkPlan(t *testing.T, p *contract.Plan) {
	t.Helper()
	if p.Job.ID != "build" || p.Job.Name != "build (amd64)" || p.Job.Workflow != "CI" {
		t.Errorf("job = %+v", p.Job)
	}
	if len(p.Steps) != 3 {
		t.Fatalf("steps = %+v", p.Steps)
	}
	co, build, run := p.Steps[0], p.Steps[1], p.Steps[2]
	if co.Uses != "actions/checkout@v4" || co.With["fetch-depth"] != "1" || co.ID != "" {
		t.Errorf("checkout step = %+v", co)
	}
	if build.ID != "build" || build.Name != "Build" || build.Run != "make all\necho done" || build.Shell != "bash" ||
		build.WorkingDirectory != "src" || build.ContinueOnError != "true" || build.TimeoutMinutes != "${{ matrix.timeout }}" ||
		build.Env["ARCH"] != "${{ matrix.arch }}" || build.If != "success()" {
		t.Errorf("build step = %+v", build)
	}
	if run.Run != "echo ${{ secrets.MY_SECRET }}" || run.If != "always()" || run.ID != "" {
		t.Errorf("run step = %+v", run)
	}
	if p.Checkout == nil || p.Checkout.URL != "https://github.com/octo/illumos-app.git" || p.Checkout.Ref != "refs/heads/main" {
		t.Errorf("checkout = %+v", p.Checkout)
	}
	if len(p.Env) != 2 || p.Env[1].Name != "JOB" || p.Env[1].Value != "${{ github.sha }}" || p.Defaults.Run.Shell != "sh" {
		t.Errorf("env = %+v, defaults = %+v", p.Env, p.Defaults)
	}
	if p.Outputs["probe"] != "${{ steps.build.outputs.value }}" {
		t.Errorf("outputs = %v", p.Outputs)
	}
	if strings.Join(p.Secrets, ",") != "GITHUB_TOKEN,MY_SECRET" {
		t.Errorf("secret names = %v", p.Secrets)
	}
	var github, matrix map[string]any
	json.Unmarshal(p.Contexts["github"], &github)
	json.Unmarshal(p.Contexts["matrix"], &matrix)
	if _, ok := github["token"]; ok || github["sha"] != "0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("github context = %v", github)
	}
	if matrix["arch"] != "amd64" || matrix["timeout"] != 5.0 {
		t.Errorf("matrix context = %v", matrix)
	}
	if _, ok := p.Contexts["needs"]; ok {
		t.Error("an empty needs context should be left out")
	}
}

func TestPrepareRefusesOtherActions(t *testing.T) {
	tests := []struct {
		name string
		ref  protocol.StepReference
		want string
	}{
		{"marketplace action", protocol.StepReference{Type: "repository", Name: "actions/setup-go", Ref: "v5"}, "the action actions/setup-go@v5 is not supported"},
		{"local action", protocol.StepReference{Type: "repository", Name: "self", Path: ".github/actions/x"}, "the action self/.github/actions/x is not supported"},
		{"docker action", protocol.StepReference{Type: "containerRegistry", Image: "alpine:3"}, "docker://alpine:3"},
		{"checkout subpath", protocol.StepReference{Type: "repository", Name: "actions/checkout", Ref: "v4", Path: "sub"}, "actions/checkout/sub@v4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadJob(t)
			m.Steps[1].Reference = tt.ref
			_, err := prepare(m, "solstice-test", "https://github.com/octo", nil)
			var u *unrunnable
			if !errors.As(err, &u) {
				t.Fatalf("err = %v, want an unrunnable job", err)
			}
			text := strings.Join(u.lines, "\n")
			if !strings.Contains(text, "step 2 (Build): "+tt.want) && !strings.Contains(text, tt.want) {
				t.Errorf("lines = %q, want them to name %q", text, tt.want)
			}
		})
	}
}

func TestRunnerLabel(t *testing.T) {
	catalog := map[string]string{"omnios-r151056": "omnios-r151056", "omnios": "omnios-r151056", "solstice-test": "solstice-test"}
	tests := []struct {
		labels   []string
		fallback string
		want     string
		wantErr  string
	}{
		{[]string{"self-hosted", "illumos", "omnios-r151056"}, "", "omnios-r151056", ""},
		{[]string{"self-hosted", "omnios"}, "", "omnios-r151056", ""},
		{[]string{"omnios", "omnios-r151056"}, "", "omnios-r151056", ""},
		{[]string{"omnios", "solstice-test"}, "", "", "name 2 images"},
		{nil, "solstice-test", "solstice-test", ""},
		{nil, "", "", "names an image"},
		{nil, "nope", "", `label "nope" is not in Nomad's catalog`},
	}
	for _, tt := range tests {
		got, err := runnerLabel(tt.labels, tt.fallback, catalog)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("runnerLabel(%v, %q) err = %v, want %q", tt.labels, tt.fallback, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("runnerLabel(%v, %q) = %q, %v; want %q", tt.labels, tt.fallback, got, err, tt.want)
		}
	}
}

// TestSecrets pins the secrets context the guest gets against the
// variables GitHub really sends: the job token twice (system.github.token
// and github_token), credentials, plain variables, and names that differ
// only in case.
func TestSecrets(t *testing.T) {
	secret := func(v string) protocol.Variable { return protocol.Variable{Value: v, IsSecret: true} }
	plain := func(v string) protocol.Variable { return protocol.Variable{Value: v} }
	tests := []struct {
		name string
		vars map[string]protocol.Variable
		want map[string]string
	}{
		{"as GitHub sends them", map[string]protocol.Variable{
			"system.github.token": secret("ghs_job"), "github_token": secret("ghs_job"),
			"system.accessToken": secret("ey.access"), "system.github.token.permissions": plain("{}"),
			"MY_SECRET": secret("hunter2"), "my_secret": plain("plain"),
		}, map[string]string{"GITHUB_TOKEN": "ghs_job", "MY_SECRET": "hunter2"}},
		{"only the system token", map[string]protocol.Variable{"system.github.token": secret("ghs_job")},
			map[string]string{"GITHUB_TOKEN": "ghs_job"}},
		{"only github_token", map[string]protocol.Variable{"github_token": secret("ghs_job")},
			map[string]string{"GITHUB_TOKEN": "ghs_job"}},
		{"the system token wins over a differing github_token", map[string]protocol.Variable{
			"SYSTEM.GITHUB.TOKEN": secret("ghs_job"), "Github_Token": secret("stale"),
		}, map[string]string{"GITHUB_TOKEN": "ghs_job"}},
		{"credentials in any case stay out", map[string]protocol.Variable{"System.AccessToken": secret("ey.access")},
			map[string]string{}},
		{"two spellings of one secret give one", map[string]protocol.Variable{
			"Deploy_Key": secret("one"), "DEPLOY_KEY": secret("two"),
		}, map[string]string{"DEPLOY_KEY": "two"}},
		{"names no shell could hold are left out", map[string]protocol.Variable{"a.b": secret("x"), "1X": secret("y")},
			map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := secrets(&protocol.JobMessage{Variables: tt.vars})
			if len(got) != len(tt.want) {
				t.Fatalf("secrets = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("secrets[%s] = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// A job with a built-in artifact or cache step gets the job's access
// token as the ACTIONS_RUNTIME_TOKEN secret and the results service in
// its env, as GitHub's runner gives them to actions; other jobs get
// neither, and the token never reaches the plan.
func TestPrepareResultsAccess(t *testing.T) {
	for _, tc := range []struct {
		name string
		ref  protocol.StepReference
		with bool
	}{
		{"upload-artifact", protocol.StepReference{Type: "repository", Name: "actions/upload-artifact", Ref: "v4"}, true},
		{"download-artifact", protocol.StepReference{Type: "repository", Name: "actions/download-artifact", Ref: "v4"}, true},
		{"cache/restore", protocol.StepReference{Type: "repository", Name: "actions/cache", Path: "restore", Ref: "v4"}, true},
		{"checkout only", protocol.StepReference{Type: "repository", Name: "actions/checkout", Ref: "v4"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadJob(t)
			m.Steps[1].Reference = tc.ref
			inputs := []protocol.MapEntry{{Key: protocol.TemplateToken{Lit: "path"}, Value: protocol.TemplateToken{Lit: "out"}}}
			if tc.ref.Name == "actions/cache" {
				inputs = append(inputs, protocol.MapEntry{Key: protocol.TemplateToken{Lit: "key"}, Value: protocol.TemplateToken{Lit: "k"}})
			}
			m.Steps[1].Inputs = &protocol.TemplateToken{Type: protocol.TokenMapping, Map: inputs}
			e, _ := m.SystemConnection()
			e.Data["ResultsServiceUrl"] = "https://results.example/"
			req, err := prepare(m, "solstice-test", "https://github.com/octo", nil)
			if err != nil {
				t.Fatal(err)
			}
			tok := m.JobToken()
			if got := req.Secrets[runtimeTokenSecret]; (got == tok) != tc.with || tok == "" {
				t.Errorf("ACTIONS_RUNTIME_TOKEN = %q, job token %q, want given: %v", got, tok, tc.with)
			}
			if bytes.Contains(req.Plan, []byte(tok)) {
				t.Error("the job token is in the plan")
			}
			p, err := contract.DecodePlanAuto(bytes.NewReader(req.Plan))
			if err != nil {
				t.Fatal(err)
			}
			var url string
			for _, e := range p.Env {
				if e.Name == resultsURLEnv {
					url = e.Value
				}
			}
			if (url == resultsURL(m) && url != "") != tc.with {
				t.Errorf("ACTIONS_RESULTS_URL = %q, want given: %v", url, tc.with)
			}
		})
	}
}
