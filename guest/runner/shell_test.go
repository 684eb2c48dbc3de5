package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`-e /tmp/x.sh`, []string{"-e", "/tmp/x.sh"}},
		{`  a   b  `, []string{"a", "b"}},
		{"a\tb", []string{"a", "b"}},
		{`"a b" c`, []string{"a b", "c"}},
		{`'a b'`, []string{"'a", "b'"}}, // single quotes are literal
		{`a"b c"d`, []string{"ab cd"}},
		{`"a ""b"" c"`, []string{`a "b" c`}}, // doubled quote inside quotes
		{`a\b`, []string{`a\b`}},             // backslashes not before a quote are literal
		{`a\\"b c"`, []string{`a\b c`}},      // 2n backslashes + quote: n backslashes, quote toggles
		{`a\"b`, []string{`a"b`}},            // 2n+1: n backslashes and a literal quote
		{`a\\\"b`, []string{`a\"b`}},
		{`-command ". '/tmp/x.ps1'"`, []string{"-command", ". '/tmp/x.ps1'"}},
		{``, nil},
	}
	for _, tt := range tests {
		if got := splitArgs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestArguments(t *testing.T) {
	tests := []struct {
		format, path string
		want         []string
		err          bool
	}{
		{"-e {0}", "/t/x.sh", []string{"-e", "/t/x.sh"}, false},
		{"{0} {{literal}}", "/t/x", []string{"/t/x", "{literal}"}, false},
		{`-c "cat {0}"`, `/t/a"b`, []string{"-c", `cat /t/a"b`}, false}, // quote in the path escaped
		{"{0} {1}", "/t/x", nil, true},
		{"{0} }", "/t/x", nil, true},
	}
	for _, tt := range tests {
		got, err := arguments(tt.format, tt.path)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("arguments(%q, %q) = %q, %v", tt.format, tt.path, got, err)
		}
	}
}

// fakeBin makes a directory holding links to the named host programs
// (a name "python=python3" links python to the host's python3).
func fakeBin(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		link, target, _ := strings.Cut(n, "=")
		if target == "" {
			target = link
		}
		p, err := exec.LookPath(target)
		if err != nil {
			t.Skipf("%s not installed", target)
		}
		if err := os.Symlink(p, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveShell(t *testing.T) {
	full := fakeBin(t, "bash", "sh", "perl", "python3")
	withPython := fakeBin(t, "python=python3")
	shOnly := fakeBin(t, "sh")
	tests := []struct {
		name, option string
		search       string
		wantProg     string
		wantFormat   string
		wantErr      string
	}{
		{"default prefers bash, with sh's args", "", full, "bash", "-e {0}", ""},
		{"default without bash is sh", "", shOnly, "sh", "-e {0}", ""},
		{"bash", "bash", full, "bash", "--noprofile --norc -e -o pipefail {0}", ""},
		{"sh", "sh", full, "sh", "-e {0}", ""},
		{"python", "python", withPython, "python", "{0}", ""},
		{"python falls back to python3", "python", full, "python3", "{0}", ""},
		{"custom", "perl {0}", full, "perl", "{0}", ""},
		{"custom with args", "bash -x {0}", full, "bash", "-x {0}", ""},
		{"custom without {0}", "perl -w", full, "", "", "Invalid shell option"},
		{"unknown name", "perl", full, "", "", "Invalid shell option"},
		{"missing program", "zsh5 {0}", full, "", "", "zsh5: command not found"},
		{"pwsh missing", "pwsh", full, "", "", "pwsh: command not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh, err := resolveShell(tt.option, []string{tt.search})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(sh.path) != tt.wantProg || sh.format != tt.wantFormat {
				t.Errorf("got %s %q", sh.path, sh.format)
			}
		})
	}
}

// Each shell really runs the script with its options.
func TestShellsRun(t *testing.T) {
	tests := []struct {
		name, shell, script, want string
		ok                        bool
	}{
		{"default bash -e: no pipefail", "", "false | true\necho $0 ok", "ok", true},
		{"default bash -e stops", "", "false\necho not reached", "", false},
		{"bash has pipefail", "bash", "false | true\necho not reached", "", false},
		{"bash noprofile", "bash", "echo $- ; shopt -qo pipefail && echo pipefail", "pipefail", true},
		{"sh -e", "sh", "false\necho not reached", "", false},
		{"python", "python", "import sys\nprint('py', sys.argv[0].endswith('.py'))", "py True", true},
		{"custom perl", "perl {0}", "print \"perl $0\\n\";", "perl /", true},
		{"custom with quoted arg", `bash -c "echo arg; . {0}"`, "echo sourced", "arg\nsourced", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.shell, "perl") {
				if _, err := exec.LookPath("perl"); err != nil {
					t.Skip("no perl")
				}
			}
			r := runJob(t, newPlan(contract.Step{Run: tt.script, Shell: tt.shell}))
			out := r.output(0)
			ev := r.finished(0)
			if (ev.Conclusion == contract.Success) != tt.ok || !strings.Contains(out, tt.want) {
				t.Errorf("conclusion %s, output %q (want %q)\n%s", ev.Conclusion, out, tt.want, r.system(0))
			}
		})
	}
}

// A shell from an expression is checked like the runner checks it.
func TestShellExpressionErrors(t *testing.T) {
	r := runJob(t, newPlan(contract.Step{Run: "echo x", Shell: "${{ 'perl' }}"}, contract.Step{Run: "echo x", If: "always()", Shell: "${{ 'zsh5 {0}' }}"}))
	r.expect(0, contract.Failure, contract.Failure)
	r.expect(1, contract.Failure, contract.Failure)
	if !strings.Contains(r.system(0), "Invalid shell option. Shell must be a valid built-in") {
		t.Errorf("step 0: %s", r.system(0))
	}
	if !strings.Contains(r.system(1), "zsh5: command not found") {
		t.Errorf("step 1: %s", r.system(1))
	}
}

// The header GitHub shows, and the script file's extension.
func TestRunHeaderAndScriptFile(t *testing.T) {
	r := runJob(t, newPlan(contract.Step{Run: "echo $0\necho two", Shell: "bash", Env: contract.Strings{"FOO": "bar"}}))
	sys := r.system(0)
	for _, want := range []string{"##[group]Run echo $0", "echo two", "shell: ", "--noprofile --norc -e -o pipefail {0}", "env:", "  FOO: bar", "##[endgroup]"} {
		if !strings.Contains(sys, want) {
			t.Errorf("header lacks %q:\n%s", want, sys)
		}
	}
	out := r.lines(0, contract.Stdout)
	if len(out) != 2 || !strings.HasPrefix(out[0], r.layout.Temp+"/") || !strings.HasSuffix(out[0], ".sh") {
		t.Errorf("script path %q", out)
	}
}
