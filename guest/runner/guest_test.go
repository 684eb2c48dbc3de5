package runner

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

// A fake GNU tool directory: the image's path_prepend must win over the
// OS's own tool of the same name, for steps and for the shell lookup.
func fakeGNU(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, dir, "tar", "#!/bin/sh\necho gnu-tar\n", 0o755)
	writeFile(t, dir, "guestsh", "#!/bin/sh\necho guest-shell\n", 0o755)
	return dir
}

func TestGuestSettingsApplied(t *testing.T) {
	gnu := fakeGNU(t)
	root := filepath.Join(t.TempDir(), "builds")
	tests := []struct {
		name  string
		guest *contract.GuestSettings
		step  contract.Step
		want  []string // stdout lines
	}{
		{"no settings: PATH unchanged", nil,
			runStep(`case "$PATH" in /*gnu*) echo front;; *) echo host;; esac`), []string{"host"}},
		{"path_prepend first", &contract.GuestSettings{PathPrepend: []string{gnu}},
			runStep("tar; echo ${PATH%%:*}"), []string{"gnu-tar", gnu}},
		{"shell when the workflow names none", &contract.GuestSettings{Shell: filepath.Join(gnu, "guestsh") + " {0}"},
			runStep("echo workflow-shell"), []string{"guest-shell"}},
		{"step shell wins", &contract.GuestSettings{Shell: filepath.Join(gnu, "guestsh") + " {0}"},
			contract.Step{Run: "echo step-shell", Shell: "sh"}, []string{"step-shell"}},
		{"work root holds the workspace", &contract.GuestSettings{WorkRoot: root},
			runStep(`echo "$GITHUB_WORKSPACE"; echo "${{ runner.workspace }}"`), []string{filepath.Join(root, "r"), root}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlan(tc.step)
			p.Guest = tc.guest
			r := runJob(t, p)
			r.expect(0, "success", "success")
			if got := r.lines(0, contract.Stdout); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("stdout %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuestDefaultShellBelowDefaultsRun(t *testing.T) {
	p := newPlan(runStep("echo workflow"))
	p.Defaults.Run.Shell = "sh"
	p.Guest = &contract.GuestSettings{Shell: filepath.Join(fakeGNU(t), "guestsh") + " {0}"}
	r := runJob(t, p)
	if got := r.output(0); !strings.Contains(got, "workflow") {
		t.Errorf("defaults.run.shell should win over the image's shell: %q", got)
	}
}

func TestGuestPathDoesNotTouchCallerEnviron(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin"}
	keep := append([]string{}, env...)
	p := newPlan(runStep("true"))
	p.Guest = &contract.GuestSettings{PathPrepend: []string{"/usr/gnu/bin"}}
	j := &Job{plan: p, baseEnv: env}
	j.applyGuest()
	if got, _ := j.baseValue("PATH"); got != "/usr/gnu/bin:/usr/bin:/bin" {
		t.Errorf("PATH = %q", got)
	}
	if strings.Join(env, " ") != strings.Join(keep, " ") {
		t.Errorf("caller's environ changed: %q", env)
	}
}
