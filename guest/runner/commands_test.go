package runner

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestParseCommand(t *testing.T) {
	reg := func(n string) bool { return registeredCommands[strings.ToLower(n)] }
	tests := []struct {
		line  string
		ok    bool
		name  string
		data  string
		props map[string]string
	}{
		{"::warning::hi", true, "warning", "hi", map[string]string{}},
		{"   ::debug::x", true, "debug", "x", map[string]string{}},
		{"::ERROR file=a.go,line=3::boom", true, "ERROR", "boom", map[string]string{"file": "a.go", "line": "3"}},
		{"::error title=a%3Ab%2Cc%25d,col=1::x%0Ay%0Dz%25%3A", true, "error", "x\ny\rz%%3A", map[string]string{"title": "a:b,c%d", "col": "1"}},
		{"::error title=,=x,k=v=w::d", true, "error", "d", map[string]string{"k": "v=w"}},
		{"::unknown::x", false, "", "", nil},
		{"text ::warning::not at start", false, "", "", nil},
		{"::warning no end", false, "", "", nil},
		{"##[warning]legacy", true, "warning", "legacy", map[string]string{}},
		{"prefix ##[error file=a;line=2]legacy%5D%3B", true, "error", "legacy];", map[string]string{"file": "a", "line": "2"}},
		{"::add-mask::%250A", true, "add-mask", "%0A", map[string]string{}},
	}
	for _, tt := range tests {
		c, ok := parseCommand(tt.line, reg)
		if ok != tt.ok {
			t.Errorf("%q: ok=%v", tt.line, ok)
			continue
		}
		if ok && (c.name != tt.name || c.data != tt.data || !reflect.DeepEqual(c.props, tt.props)) {
			t.Errorf("%q: got %+v", tt.line, c)
		}
	}
}

func TestFileCommandParsing(t *testing.T) {
	tests := []struct {
		name, in string
		want     [][2]string
		err      string
	}{
		{"simple", "A=1\nB=two words\n", [][2]string{{"A", "1"}, {"B", "two words"}}, ""},
		{"empty value and blank lines", "\nA=\n\n", [][2]string{{"A", ""}}, ""},
		{"equals first", "A=x<<y\n", [][2]string{{"A", "x<<y"}}, ""},
		{"heredoc", "M<<EOF\nline 1\nline=2\n\nEOF\nN=3\n", [][2]string{{"M", "line 1\nline=2\n"}, {"N", "3"}}, ""},
		{"heredoc first", "M<<E=F\nv\nE=F\n", [][2]string{{"M", "v"}}, ""},
		{"empty heredoc", "M<<EOF\nEOF\n", [][2]string{{"M", ""}}, ""},
		{"delimiter at eof without newline", "M<<EOF\nv\nEOF", [][2]string{{"M", "v"}}, ""},
		{"missing delimiter", "A=1\nM<<EOF\nv\n", [][2]string{{"A", "1"}}, "Matching delimiter not found 'EOF'"},
		{"unterminated last line", "M<<EOF\nv", nil, "EOF marker missing new line"},
		{"no separator", "A=1\njunk\nB=2\n", [][2]string{{"A", "1"}}, "Invalid format 'junk'"},
		{"empty delimiter", "M<<\n", nil, "delimiter must not be empty"},
		{"empty name", "=x\n", nil, "Name must not be empty"},
	}
	for _, tt := range tests {
		got, err := parseKeyValues(tt.in)
		if !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("%s: pairs %q, want %q", tt.name, got, tt.want)
		}
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestFileCommands(t *testing.T) {
	p := newPlan(
		contract.Step{ID: "a", Run: `{ echo "X=1"; echo "ML<<EOF"; echo "l1"; echo "l2"; echo "EOF"; } >> "$GITHUB_ENV"
echo "out=v" >> "$GITHUB_OUTPUT"; echo "st=1" >> "$GITHUB_STATE"; echo "# Summary" >> "$GITHUB_STEP_SUMMARY"
exit 1`, ContinueOnError: "true"},
		contract.Step{Run: `echo "X=$X ML=$ML out=${{ steps.a.outputs.out }}"`},
		contract.Step{ID: "bad", Run: `echo "G=1" >> "$GITHUB_ENV"; echo "M<<EOF" >> "$GITHUB_ENV"; echo v >> "$GITHUB_ENV"`},
		contract.Step{Run: `echo "G=$G M=${M-unset}"`, If: "always()"},
		contract.Step{Run: `echo "NODE_OPTIONS=--x" >> "$GITHUB_ENV"`, If: "always()"},
		contract.Step{Run: `echo "NODE_OPTIONS=${NODE_OPTIONS-unset}"`, If: "always()"},
	)
	r := runJob(t, p)
	// processed although the step failed
	if got := r.output(1); got != "X=1 ML=l1\nl2 out=v" {
		t.Errorf("step 1: %q", got)
	}
	sums := r.ofType(contract.TypeStepSummary)
	if len(sums) != 1 || sums[0].Step != 0 || sums[0].Markdown != "# Summary\n" {
		t.Errorf("summary: %+v", sums)
	}
	r.expect(2, contract.Failure, contract.Failure)
	if s := r.system(2); !strings.Contains(s, "Unable to process file command 'env' successfully.") || !strings.Contains(s, "Matching delimiter not found 'EOF'") {
		t.Errorf("step 2: %s", s)
	}
	if got := r.output(3); got != "G=1 M=unset" {
		t.Errorf("pairs before the error apply: %q", got)
	}
	r.expect(4, contract.Success, contract.Success)
	if !strings.Contains(r.system(4), "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.") {
		t.Errorf("step 4: %s", r.system(4))
	}
	if r.output(5) != "NODE_OPTIONS=unset" {
		t.Errorf("NODE_OPTIONS was set: %q", r.output(5))
	}
}

func TestWorkflowCommands(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		env     contract.Strings
		secrets map[string]string
		ok      bool
		want    []string // log lines expected (any stream), in order
		absent  []string // substrings that must appear nowhere
	}{
		{name: "group", ok: true, script: "echo ::group::Build\necho inside\necho ::endgroup::",
			want: []string{"##[group]Build", "inside", "##[endgroup]"}, absent: []string{"::group::"}},
		{name: "error with properties", ok: true, script: `echo "::error file=src/a.c,line=3,col=7,endLine=3,endColumn=9,title=Bad%3A thing::it broke%0Atwice"`,
			want: []string{"Error: src/a.c:3:7: Bad: thing: it broke", "twice"}},
		{name: "warning and notice", ok: true, script: "echo ::warning::careful\necho ::notice title=FYI::note",
			want: []string{"Warning: careful", "Notice: FYI: note"}},
		{name: "legacy syntax", ok: true, script: "echo '##[warning]old style'", want: []string{"Warning: old style"}},
		{name: "debug hidden", ok: true, script: "echo ::debug::secret-ish detail\necho after", want: []string{"after"}, absent: []string{"detail"}},
		{name: "debug shown with ACTIONS_STEP_DEBUG", ok: true, script: "echo ::debug::detail\necho ::warning::w",
			secrets: map[string]string{"ACTIONS_STEP_DEBUG": "true"}, want: []string{"Debug: detail", "Warning: w"}},
		{name: "add-mask", ok: true, script: "echo ::add-mask::hunter22\necho pw=hunter22\necho \"::add-mask::line one%0Aline two\"\necho line two here",
			want: []string{"pw=***", "*** here"}, absent: []string{"hunter22", "line two"}},
		{name: "add-mask blank warns", ok: true, script: "echo '::add-mask:: '", want: []string{"Warning: Can't add secret mask for empty string in ##[add-mask] command."}},
		{name: "stop-commands", ok: true, script: "echo ::stop-commands::pause123\necho ::warning::not a warning\necho ::pause123::\necho ::warning::a warning",
			want: []string{"::stop-commands::***", "::warning::not a warning", "::***::", "Warning: a warning"}},
		{name: "bad stop token", ok: false, script: "echo ::stop-commands::warning", want: []string{"Error: You cannot use a endToken"}},
		{name: "set-env refused", ok: false, script: "echo ::set-env name=A::1",
			want: []string{"Error: Unable to process command '::set-env name=A::1' successfully.", "Error: The `set-env` command is disabled."}},
		{name: "add-path refused", ok: false, script: "echo ::add-path::/x", want: []string{"Error: The `add-path` command is disabled."}},
		{name: "set-env allowed", ok: true, script: "echo ::set-env name=A::1", env: contract.Strings{"ACTIONS_ALLOW_UNSECURE_COMMANDS": "true"}},
		{name: "set-output deprecated but works", ok: true, script: "echo ::set-output name=o::v", want: []string{"Warning: The `set-output` command is deprecated"}},
		{name: "echo on", ok: true, script: "echo ::echo::on\necho ::group::g\necho ::echo::off\necho ::group::h",
			want: []string{"::group::g", "##[group]g", "##[group]h"}},
		{name: "bad echo", ok: false, script: "echo ::echo::loud", want: []string{"Invalid echo command value"}},
		{name: "matchers ignored", ok: true, script: "echo ::add-matcher::m.json", want: []string{"Problem matchers are not supported"}},
		{name: "stderr commands too", ok: true, script: "echo ::warning::from stderr >&2", want: []string{"Warning: from stderr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runJob(t, newPlan(contract.Step{Run: tt.script, Env: tt.env}), withSecrets(tt.secrets))
			ev := r.finished(0)
			if (ev.Conclusion == contract.Success) != tt.ok {
				t.Errorf("conclusion %s", ev.Conclusion)
			}
			all := strings.Join(r.lines(0), "\n")
			at := 0
			for _, w := range tt.want {
				i := strings.Index(all[at:], w)
				if i < 0 {
					t.Errorf("missing %q (in order) in:\n%s", w, all)
					break
				}
				at += i + len(w)
			}
			// The script itself is shown in the header, as on GitHub: look
			// at what came after it.
			_, after, _ := strings.Cut(all, "##[endgroup]")
			for _, a := range tt.absent {
				if strings.Contains(after, a) {
					t.Errorf("%q appears in the output:\n%s", a, after)
				}
			}
		})
	}
}

func TestAnnotationEvents(t *testing.T) {
	r := runJob(t, newPlan(runStep(`echo "::error file=$GITHUB_WORKSPACE/src/a.c,line=5,endLine=3,col=2::m"`)))
	var ann *contract.Annotation
	for _, ev := range r.events {
		if ev.Kind == contract.KindError && ev.Annotation != nil {
			ann = ev.Annotation
		}
	}
	// made relative to the workspace; endLine < line drops both
	if ann == nil || ann.File != "src/a.c" || ann.Line != 0 || ann.Message != "m" || ann.Level != "error" {
		t.Errorf("annotation %+v", ann)
	}
}

// Secrets are masked in every event, in all the forms the runner masks.
func TestSecretMasking(t *testing.T) {
	const secret = `s3cr3t "v@lue"`
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	p := newPlan(
		contract.Step{Name: "uses ${{ secrets.MY_SECRET }}", Run: `echo "plain: $S"
echo "b64: ` + b64 + `"
echo '{"json":"s3cr3t \"v@lue\""}'
echo "url: s3cr3t%20%22v%40lue%22"
printf 'multi: line-one-of-key\n'
echo "::error::failed with $S"`, Env: contract.Strings{"S": "${{ secrets.MY_SECRET }}"}},
	)
	p.Secrets = []string{"MY_SECRET", "MULTI"}
	r := runJob(t, p, withSecrets(map[string]string{"MY_SECRET": secret, "MULTI": "line-one-of-key\nline-two"}))
	raw := r.raw()
	for _, leak := range []string{"s3cr3t", b64, "v%40lue", "line-one-of-key"} {
		if strings.Contains(raw, leak) {
			t.Errorf("%q leaked:\n%s", leak, raw)
		}
	}
	out := r.output(0)
	for _, want := range []string{"plain: ***", "b64: ***", `{"json":"***"}`, "url: ***", "multi: ***"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}
