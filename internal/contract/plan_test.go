package contract

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const example = `{"version":1,
 "job":{"id":"build","name":"build (amd64)","workflow":"CI"},
 "timeout_minutes":360,
 "defaults":{"run":{"shell":"bash","working-directory":"src"}},
 "env":[{"name":"WF","value":"x"},{"name":"N","value":3}],
 "contexts":{"github":{"repository":"o/r","event":{"b":1,"a":2}},"matrix":{"os":"omnios"},"needs":{},"vars":{},"inputs":{},"strategy":{}},
 "secrets":["GITHUB_TOKEN","MY_SECRET"],
 "outputs":{"version":"${{ steps.v.outputs.version }}"},
 "steps":[
   {"id":"v","name":"Compute","if":"","continue-on-error":false,"timeout-minutes":5,
    "env":{"A":"1","B":2},"run":"echo ...","shell":"","working-directory":""},
   {"name":"Checkout","uses":"actions/checkout@v4","with":{"repository":"","ref":"main","path":"","fetch-depth":"1","submodules":"false","token":"${{ secrets.GITHUB_TOKEN }}"}},
   {"name":"Legacy","kdl":{"path":".solstice/workflow.kdl","job":"illumos-build"}},
   {"run":"x","continue-on-error":"${{ matrix.experimental }}","timeout-minutes":"${{ 2 * 3 }}"}
 ],
 "checkout":{"url":"https://forge.example/o/r.git","sha":"0123456789012345678901234567890123456789","ref":"refs/heads/main","bundle":""}
}`

func TestDecodeExample(t *testing.T) {
	p, err := DecodePlan(strings.NewReader(example))
	if err != nil {
		t.Fatal(err)
	}
	if p.Job.Name != "build (amd64)" || len(p.Steps) != 4 || p.Steps[0].TimeoutMinutes != "5" {
		t.Errorf("decoded %+v", p)
	}
	if p.Env[1].Value != "3" || p.Steps[0].Env["B"] != "2" || p.Steps[0].ContinueOnError != "false" {
		t.Errorf("scalars not kept as text: %+v %+v", p.Env, p.Steps[0])
	}
	if p.Steps[3].ContinueOnError != "${{ matrix.experimental }}" {
		t.Errorf("expression lost: %q", p.Steps[3].ContinueOnError)
	}
}

func TestEncodeRoundTripAndCompression(t *testing.T) {
	p, err := DecodePlan(strings.NewReader(example))
	if err != nil {
		t.Fatal(err)
	}
	var plain, packed bytes.Buffer
	if err := EncodePlan(&plain, p); err != nil {
		t.Fatal(err)
	}
	if err := EncodePlanCompressed(&packed, p); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]json.RawMessage{"plain": plain.Bytes(), "gzip": packed.Bytes()} {
		back, err := DecodePlanAuto(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var again bytes.Buffer
		EncodePlan(&again, back)
		if again.String() != plain.String() {
			t.Errorf("%s round trip:\n%s\n%s", name, again.String(), plain.String())
		}
	}
	if strings.Contains(plain.String(), `"shell":""`) || strings.Contains(plain.String(), "\n") {
		t.Errorf("encoding not compact: %s", plain.String())
	}
	if !strings.Contains(plain.String(), `"continue-on-error":false`) || !strings.Contains(plain.String(), `"timeout-minutes":5`) {
		t.Errorf("scalars not written as JSON literals: %s", plain.String())
	}
}

func TestValidate(t *testing.T) {
	base := func() *Plan {
		return &Plan{Version: 1, Job: Job{ID: "j"}, Steps: []Step{{Run: "true"}}}
	}
	tests := []struct {
		name   string
		change func(p *Plan)
		want   string // substring of the error; "" = valid
	}{
		{"minimal", func(p *Plan) {}, ""},
		{"version", func(p *Plan) { p.Version = 2 }, "plan: version: unsupported plan version 2"},
		{"job id", func(p *Plan) { p.Job.ID = "" }, "plan: job.id: missing"},
		{"no steps", func(p *Plan) { p.Steps = nil }, "plan: steps: a job needs at least one step"},
		{"unknown shell", func(p *Plan) { p.Steps = append(p.Steps, Step{}, Step{Run: "x", Shell: "zsh5"}) }, `plan: steps[2].shell: unknown shell "zsh5"`},
		{"shell without {0}", func(p *Plan) { p.Steps[0].Shell = "perl -w" }, `plan: steps[0].shell: invalid shell option "perl -w"`},
		{"custom shell", func(p *Plan) { p.Steps[0].Shell = "perl {0}" }, ""},
		{"builtin shells", func(p *Plan) { p.Steps[0].Shell = "python"; p.Defaults.Run.Shell = "sh" }, ""},
		{"shell expression", func(p *Plan) { p.Steps[0].Shell = "${{ matrix.shell }}" }, ""},
		{"defaults shell", func(p *Plan) { p.Defaults.Run.Shell = "fish" }, "plan: defaults.run.shell: unknown shell"},
		{"other action", func(p *Plan) { p.Steps = append(p.Steps, Step{Uses: "some/action@v1"}) },
			"plan: steps[1]: action some/action@v1 is not supported: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4 and actions/cache (with /restore and /save) run on Solstice"},
		{"cache", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/cache@v4", With: Strings{"key": "k-${{ hashFiles('go.sum') }}", "path": "~/go", "restore-keys": "k-"}}
		}, ""},
		{"cache restore without key", func(p *Plan) { p.Steps[0] = Step{Uses: "actions/cache/restore@v4", With: Strings{"path": "x"}} }, "steps[0].with.key: actions/cache/restore needs a key"},
		{"cache unknown input", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/cache/save@v4", With: Strings{"key": "k", "path": "x", "keys": "y"}}
		}, `steps[0].with.keys: actions/cache/save has no input "keys"`},
		{"upload artifact", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/upload-artifact@v4", With: Strings{"name": "a", "path": "out/", "retention-days": "1"}}
		}, ""},
		{"upload artifact v3", func(p *Plan) { p.Steps[0] = Step{Uses: "actions/upload-artifact@v3", With: Strings{"path": "x"}} }, "is not supported"},
		{"upload artifact without path", func(p *Plan) { p.Steps[0] = Step{Uses: "actions/upload-artifact@v4"} }, "steps[0].with.path: actions/upload-artifact needs a path"},
		{"upload artifact unknown input", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/upload-artifact@v4", With: Strings{"path": "x", "pathh": "y"}}
		}, `steps[0].with.pathh: actions/upload-artifact has no input "pathh"`},
		{"download artifact", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/download-artifact@v4.1.8", With: Strings{"pattern": "a-*", "merge-multiple": "true", "github-token": ""}}
		}, ""},
		{"download from another run", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/download-artifact@v4", With: Strings{"run-id": "7"}}
		}, `steps[0].with.run-id: input "run-id" of actions/download-artifact is not supported`},
		{"checkout needs source", func(p *Plan) { p.Steps[0] = Step{Uses: "actions/checkout@v4"} }, "checkout.url or checkout.bundle"},
		{"checkout with url", func(p *Plan) { p.Steps[0] = Step{Uses: "actions/checkout@v4"}; p.Checkout = &Checkout{URL: "u"} }, ""},
		{"checkout other repo", func(p *Plan) { p.Steps[0] = Step{Uses: "Actions/Checkout@main", With: Strings{"repository": "o/x"}} }, ""},
		{"checkout bad depth", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/checkout@v4", With: Strings{"repository": "o/x", "fetch-depth": "-1"}}
		}, "steps[0].with.fetch-depth"},
		{"checkout bad submodules", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/checkout@v4", With: Strings{"repository": "o/x", "submodules": "yes"}}
		}, "steps[0].with.submodules"},
		{"checkout unsupported input", func(p *Plan) {
			p.Steps[0] = Step{Uses: "actions/checkout@v4", With: Strings{"repository": "o/x", "ssh-key": "k", "lfs": "false"}}
		}, `steps[0].with.ssh-key: input "ssh-key"`},
		{"with on run step", func(p *Plan) { p.Steps[0].With = Strings{"a": "b"} }, "steps[0].with: only uses steps take inputs"},
		{"shell on kdl step", func(p *Plan) { p.Steps[0] = Step{KDL: &KDL{Path: "f", Job: "j"}, Shell: "sh"} }, "steps[0].shell: only run steps"},
		{"kdl missing job", func(p *Plan) { p.Steps[0] = Step{KDL: &KDL{Path: "f"}} }, "steps[0].kdl.job: missing"},
		{"two kinds", func(p *Plan) { p.Steps[0].Uses = "actions/checkout@v4" }, "exactly one of run, uses or kdl"},
		{"empty step", func(p *Plan) { p.Steps[0].Run = "" }, "a step needs one of run, uses or kdl"},
		{"bad id", func(p *Plan) { p.Steps[0].ID = "1x" }, `steps[0].id: invalid step id "1x"`},
		{"duplicate id", func(p *Plan) { p.Steps = []Step{{ID: "a", Run: "x"}, {ID: "A", Run: "y"}} }, `steps[1].id: duplicate step id "A"`},
		{"continue-on-error text", func(p *Plan) { p.Steps[0].ContinueOnError = "maybe" }, "steps[0].continue-on-error"},
		{"timeout zero", func(p *Plan) { p.Steps[0].TimeoutMinutes = "0" }, "steps[0].timeout-minutes"},
		{"timeout expression", func(p *Plan) { p.Steps[0].TimeoutMinutes = "${{ inputs.t }}" }, ""},
		{"env name", func(p *Plan) { p.Env = []EnvVar{{Name: "A=B"}} }, "env[0].name: invalid variable name"},
		{"step env name", func(p *Plan) { p.Steps[0].Env = Strings{"": "x"} }, "steps[0].env: empty variable name"},
		{"unknown context", func(p *Plan) { p.Contexts = map[string]json.RawMessage{"secrets": []byte(`{}`)} }, "contexts.secrets: unknown context"},
		{"context not object", func(p *Plan) { p.Contexts = map[string]json.RawMessage{"matrix": []byte(`[1]`)} }, "contexts.matrix: must be a JSON object"},
		{"token in plan", func(p *Plan) { p.Contexts = map[string]json.RawMessage{"github": []byte(`{"token":"x"}`)} }, "contexts.github.token: secret values must not be in a plan"},
		{"secret name", func(p *Plan) { p.Secrets = []string{"OK", "bad-name"} }, `secrets[1]: invalid secret name "bad-name"`},
		{"duplicate secret", func(p *Plan) { p.Secrets = []string{"A", "a"} }, `secrets[1]: duplicate secret name "a"`},
		{"negative timeout", func(p *Plan) { p.TimeoutMinutes = -1 }, "timeout_minutes: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.change(p)
			err := p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	p := &Plan{Version: 3, Steps: []Step{{Shell: "zsh5", Run: "x"}, {Uses: "x/y@v1"}}}
	err := p.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"version", "job.id", "steps[0].shell", "steps[1]: action x/y@v1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field":  `{"version":1,"job":{"id":"j"},"steps":[{"run":"x","sehll":"sh"}]}`,
		"trailing data":  `{"version":1,"job":{"id":"j"},"steps":[{"run":"x"}]} {}`,
		"object in env":  `{"version":1,"job":{"id":"j"},"env":[{"name":"A","value":{}}],"steps":[{"run":"x"}]}`,
		"invalid":        `{"version":1,"job":{"id":"j"},"steps":[]}`,
		"not json":       `hello`,
		"array in with":  `{"version":1,"job":{"id":"j"},"steps":[{"uses":"actions/checkout@v4","with":{"repository":[1]}}]}`,
		"garbage gzip":   "\x1f\x8bnot really",
		"bool in scalar": `{"version":1,"job":{"id":"j"},"steps":[{"run":"x","timeout-minutes":[]}]}`,
	} {
		if _, err := DecodePlanAuto(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A realistic plan with a trimmed event fits the 16 KiB dispatch payload
// comfortably once compressed.
func TestCompressedSize(t *testing.T) {
	p, _ := DecodePlan(strings.NewReader(example))
	for i := 0; i < 40; i++ {
		p.Steps = append(p.Steps, Step{Name: "Build part", Run: "gmake -C src/part all check\n" + strings.Repeat("echo compiling module; ", 10)})
	}
	var plain, packed bytes.Buffer
	EncodePlan(&plain, p)
	EncodePlanCompressed(&packed, p)
	if packed.Len() > plain.Len()/4 || packed.Len() > 16<<10 {
		t.Errorf("compressed %d of %d bytes", packed.Len(), plain.Len())
	}
}
