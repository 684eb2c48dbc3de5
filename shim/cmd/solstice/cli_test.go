package main

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestMain lets the tests run this binary as the solstice command: with
// SOLSTICE_CLI_MAIN set, the test binary is solstice.
func TestMain(m *testing.M) {
	if os.Getenv("SOLSTICE_CLI_MAIN") == "1" {
		os.Exit(dispatch(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// solstice runs the CLI with args and returns its stdout, stderr and exit
// status.
func solstice(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "SOLSTICE_CLI_MAIN=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("solstice %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// everyCommand is every command and subcommand a user can ask for help.
var everyCommand = [][]string{
	{},
	{"run"}, {"validate"}, {"version"},
	{"jobs"}, {"jobs", "sync"}, {"jobs", "list"},
	{"image"}, {"image", "list"}, {"image", "pull"}, {"image", "verify"},
	{"forgejo"}, {"forgejo", "register"}, {"forgejo", "run"},
	{"github"}, {"github", "register"}, {"github", "run"}, {"github", "remove"},
	{"cache"}, {"cache", "serve"},
}

func TestEveryCommandIsTested(t *testing.T) {
	tested := map[string]bool{}
	for _, c := range everyCommand {
		if len(c) > 0 {
			tested[c[0]] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		if !tested[name] {
			t.Errorf("command %q is missing from everyCommand", name)
		}
	}
}

func TestHelpGoesToStdoutWithExitZero(t *testing.T) {
	for _, c := range everyCommand {
		for _, flag := range []string{"--help", "-h"} {
			args := append(slices.Clone(c), flag)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, errOut, code := solstice(t, nil, args...)
				if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage:") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0, the usage on stdout, nothing on stderr", code, out, errOut)
				}
			})
		}
	}
	t.Run("help run", func(t *testing.T) {
		out, _, code := solstice(t, nil, "help", "run")
		if code != 0 || !strings.HasPrefix(out, "usage: solstice run") {
			t.Fatalf("exit %d, stdout %q", code, out)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	noKeys := []string{"HOME=" + t.TempDir()} // no ~/.ssh at all
	tests := []struct {
		args       []string
		wantStderr string
		env        []string
	}{
		{nil, "usage: solstice <command>", nil},
		{[]string{"frobnicate"}, `solstice: unknown command "frobnicate"`, nil},
		{[]string{"jobs"}, "solstice jobs: a subcommand is required", nil},
		{[]string{"image", "frob"}, `solstice image: unknown subcommand "frob"`, nil},
		{[]string{"image", "pull"}, "solstice image pull: want one IMAGE, got 0 arguments", nil},
		{[]string{"image", "verify", "a", "b"}, "solstice image verify: want one IMAGE, got 2 arguments", nil},
		{[]string{"image", "pull", "-all", "-node", "n1", "x"}, "solstice image pull: -all and -node exclude each other", nil},
		{[]string{"image", "verify", "-all", "x"}, "solstice image verify: flag provided but not defined: -all", nil},
		{[]string{"run", "-no-such-flag", "ci.yml"}, "solstice run: flag provided but not defined: -no-such-flag", nil},
		{[]string{"run"}, "solstice run: want one workflow file, got 0 arguments", nil},
		{[]string{"validate"}, "solstice validate: want at least one workflow file", nil},
		{[]string{"version", "extra"}, `solstice version: unexpected argument "extra"`, nil},
		{[]string{"run", "-debug-ssh", "ci.yml"}, "solstice run: -debug-ssh: no SSH public key in ", noKeys},
		{[]string{"run", "-debug-ssh-max", "0s", "ci.yml"}, "solstice run: -debug-ssh-max 0s: want a positive duration", nil},
		{[]string{"run", "-address", "http://127.0.0.1:1", "-debug-ssh-max", "5m", "ci.yml"}, "solstice run: -debug-ssh-max sets a local agent's limit", nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := solstice(t, tt.env, tt.args...)
			if code != exitUsage || out != "" || !strings.HasPrefix(errOut, tt.wantStderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and stderr starting %q", code, out, errOut, exitUsage, tt.wantStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		t.Run(args[0], func(t *testing.T) {
			out, errOut, code := solstice(t, nil, args...)
			if code != 0 || errOut != "" || out != "solstice "+version+"\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

func TestNomadFlagsOverrideTheEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantAddr string
		wantNS   string
		wantTok  string
		wantSet  bool
	}{
		{name: "neither", wantAddr: "http://127.0.0.1:4646", wantNS: ""},
		{name: "environment", env: map[string]string{"NOMAD_ADDR": "http://env:4646", "NOMAD_NAMESPACE": "ci", "NOMAD_TOKEN": "env-token"},
			wantAddr: "http://env:4646", wantNS: "ci", wantTok: "env-token", wantSet: true},
		{name: "flag", args: []string{"-address", "http://flag:4646"}, wantAddr: "http://flag:4646", wantSet: true},
		{name: "flag over environment", env: map[string]string{"NOMAD_ADDR": "http://env:4646", "NOMAD_NAMESPACE": "ci", "NOMAD_TOKEN": "env-token"},
			args:     []string{"-address", "http://flag:4646", "-namespace", "other", "-token", "flag-token"},
			wantAddr: "http://flag:4646", wantNS: "other", wantTok: "flag-token", wantSet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"NOMAD_ADDR", "NOMAD_NAMESPACE", "NOMAD_TOKEN", "NOMAD_REGION", "NOMAD_CACERT"} {
				t.Setenv(k, tt.env[k])
			}
			fs := newTestFlagSet()
			var nf nomadFlags
			nf.add(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c := nf.config()
			if c.Address != tt.wantAddr || c.Namespace != tt.wantNS || c.SecretID != tt.wantTok || nf.set() != tt.wantSet {
				t.Errorf("address %q namespace %q token %q set %v; want %q %q %q %v",
					c.Address, c.Namespace, c.SecretID, nf.set(), tt.wantAddr, tt.wantNS, tt.wantTok, tt.wantSet)
			}
		})
	}
}

func newTestFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// TestOneNamePerConcept: a runner's name defaults to what the shims'
// jobspec runs, the forge's registration token is --token in every
// command, and no command takes a flag it ignores.
func TestOneNamePerConcept(t *testing.T) {
	spec, err := os.ReadFile("../../../jobspecs/runner-shims.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if want := `variable "runner_name" {
  type    = string
  default = "` + defaultRunnerName + `"`; !strings.Contains(string(spec), want) {
		t.Errorf("jobspecs/runner-shims.nomad.hcl: runner_name's default is not %q, the CLI's --name default", defaultRunnerName)
	}
	tests := []struct {
		cmd       []string
		want, not []string
	}{
		{[]string{"forgejo", "register"}, []string{"-token", "-name string\n    \tthe runner's name in the forge (default \"solstice\")"}, nil},
		{[]string{"forgejo", "run"}, []string{"-token", "(default \"solstice\")"}, []string{"-registration-token"}},
		{[]string{"github", "register"}, []string{"-token", "-labels", "-runner-version", "(default \"solstice\")"}, nil},
		{[]string{"github", "run"}, []string{"-label ", "-runner-version"}, []string{"-labels", "-token "}},
		{[]string{"github", "remove"}, []string{"-token"}, []string{"-labels", "-runner-version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			out, _, code := solstice(t, nil, append(tt.cmd, "-h")...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, "  "+strings.TrimPrefix(w, "  ")) && !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, "  "+n) {
					t.Errorf("help offers %q, which this command does not use:\n%s", n, out)
				}
			}
		})
	}
}
