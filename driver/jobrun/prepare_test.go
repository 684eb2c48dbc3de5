package jobrun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/agentdisk"
	"github.com/solstice-ci/solstice/driver/guestssh"
)

// TestPrepareScript runs the first session's script with the host's sh
// (as for a root login, so without sudo) under a temporary root, with copy
// scripts standing in for agentdisk's.
func TestPrepareScript(t *testing.T) {
	tests := []struct {
		name      string
		inline    bool
		copyAgent string
		wantCode  int
		wantAgent string // "" for none
	}{
		{"no disk", false, "", 0, ""},
		{"agent from the disk", false, `printf 'agent bytes'`, 0, "agent bytes"},
		{"plan inline, agent from the disk", true, `printf 'agent bytes'`, 0, "agent bytes"},
		{"no disk found", false, `exit 3`, diskNotFound, ""},
		{"copy fails half way", true, `printf 'half'; exit 1`, diskFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "solstice")
			// A gzip plan has NULs, quotes, % and backslashes in it.
			want := "\x1f\x8b\x00{\"version\":1}\n'%s\\x 100%\x00\x01" + "7\xff"
			format, stdin := "", want
			if tt.inline {
				format, stdin = guestssh.PrintfFormat([]byte(want)), "the secrets"
			}
			code, _ := runSh(t, prepareScript(root, format, tt.copyAgent, true), stdin)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d", code, tt.wantCode)
			}
			if plan, err := os.ReadFile(filepath.Join(root, "plan.json")); err != nil || string(plan) != want {
				t.Errorf("plan.json = %q, %v; want %q", plan, err, want)
			}
			if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("root %v, %v; want mode 0700", st, err)
			}
			agent := filepath.Join(root, "bin", "solstice-guest")
			got, err := os.ReadFile(agent)
			if tt.wantAgent == "" {
				if err == nil {
					t.Errorf("an agent %q was left in place", got)
				}
			} else if st, _ := os.Stat(agent); string(got) != tt.wantAgent || st.Mode().Perm() != 0o700 {
				t.Errorf("agent %q mode %v, want %q mode 0700", got, st.Mode().Perm(), tt.wantAgent)
			}
		})
	}
}

// TestPrepareScriptFailsWithoutItsRoot: when the directories cannot be
// made, the script says so with its own status, which is no disk problem
// to fall back from.
func TestPrepareScriptFailsWithoutItsRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _ := runSh(t, prepareScript(filepath.Join(file, "solstice"), "", `printf agent`, true), "{}")
	if code != prepareFailed {
		t.Fatalf("exit %d, want %d", code, prepareFailed)
	}
}

// TestPlaceThenInPlace: a template's placeScript leaves the directories
// and the agent and no plan; a clone's inPlaceScript then writes only the
// plan, runs no mkdir and no copy, and leaves the agent as it was.
func TestPlaceThenInPlace(t *testing.T) {
	root := filepath.Join(t.TempDir(), "solstice")
	if code, out := runSh(t, placeScript(root, `printf 'agent bytes'`, true), ""); code != 0 {
		t.Fatalf("placeScript: exit %d: %s", code, out)
	}
	agent := filepath.Join(root, "bin", "solstice-guest")
	if got, err := os.ReadFile(agent); err != nil || string(got) != "agent bytes" {
		t.Fatalf("agent %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, "plan.json")); err == nil {
		t.Error("the template got a plan")
	}
	script := inPlaceScript(root, guestssh.PrintfFormat([]byte("the plan")))
	if strings.Contains(script, "mkdir") || strings.Contains(script, "sudo") || strings.Contains(script, "chmod") {
		t.Errorf("the clone's script runs more than the plan's printf: %s", script)
	}
	if code, out := runSh(t, script, "the secrets"); code != 0 {
		t.Fatalf("inPlaceScript: exit %d: %s", code, out)
	}
	if plan, err := os.ReadFile(filepath.Join(root, "plan.json")); err != nil || string(plan) != "the plan" {
		t.Errorf("plan.json = %q, %v", plan, err)
	}
	if got, _ := os.ReadFile(agent); string(got) != "agent bytes" {
		t.Errorf("agent %q after the clone's script", got)
	}
	if code, _ := runSh(t, placeScript(root, `exit 3`, true), ""); code != diskNotFound {
		t.Errorf("placeScript without a disk: exit %d, want %d", code, diskNotFound)
	}
}

func TestDiskFailure(t *testing.T) {
	for _, tt := range []struct {
		ee   guestssh.ExitError
		want string
	}{
		{guestssh.ExitError{Code: diskNotFound}, "the guest found no agent disk"},
		{guestssh.ExitError{Code: diskFailed, Stderr: "sudo: a password is required\n"}, `exit 92: "sudo: a password is required"`},
		{guestssh.ExitError{Code: diskFailed, Stderr: strings.Repeat("x", 5000)}, `exit 92: "` + strings.Repeat("x", 200) + `"`},
	} {
		if got := diskFailure(&tt.ee); !strings.HasSuffix(got, tt.want) {
			t.Errorf("diskFailure(%d, %.20q) = %q, want it to end in %q", tt.ee.Code, tt.ee.Stderr, got, tt.want)
		}
	}
}

func runSh(t *testing.T, script, stdin string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestFirstSession: the first session starts the agent itself only when
// the agent comes from its disk, no bundle has to go in first and the plan
// fits in the command; its outcome says how the agent came in, whether it
// runs, and what is a failure rather than a disk to fall back from.
func TestFirstSession(t *testing.T) {
	disk := &agentdisk.Disk{Header: "solstice-agent-disk 1 ab 5", Blocks: 1}
	small, big := []byte("\x1f\x8b\x00gzip"), bytes.Repeat([]byte{0}, maxInlinePlan/4+1)
	exit := func(code int) error { return &guestssh.ExitError{Code: code, Stderr: "why"} }
	tests := []struct {
		name        string
		f           Files
		plan        []byte
		err         error
		wantStarts  bool
		wantShipped Shipped
		wantStarted bool
		wantErr     string
	}{
		{"disk, starts", Files{AgentDisk: disk}, small, nil, true, "copied by the guest from the read-only agent disk", true, ""},
		{"disk, bundle first", Files{AgentDisk: disk, Bundle: "b"}, small, nil, false, "copied by the guest from the read-only agent disk", false, ""},
		{"disk, plan too big", Files{AgentDisk: disk}, big, nil, false, "copied by the guest from the read-only agent disk", false, ""},
		{"no disk", Files{NoDisk: "no agent disk: x"}, small, nil, false, "", false, ""},
		{"disk not found", Files{AgentDisk: disk}, small, exit(diskNotFound), true, "", false, ""},
		{"disk copy failed", Files{AgentDisk: disk}, small, exit(diskFailed), true, "", false, ""},
		{"prepare failed", Files{AgentDisk: disk}, small, exit(prepareFailed), true, "", false, "prepare the guest"},
		{"agent failed to start", Files{AgentDisk: disk}, small, exit(3), true, "", false, "start the guest agent"},
		{"session broke", Files{}, small, errors.New("eof"), false, "", false, "prepare the guest"},
		{"in place, starts", Files{AgentDisk: disk, AgentInPlace: true}, small, nil, true, "in the guest already: its template copied it from the read-only agent disk", true, ""},
		{"in place, bundle first", Files{AgentDisk: disk, AgentInPlace: true, Bundle: "b"}, small, nil, false, "in the guest already: its template copied it from the read-only agent disk", false, ""},
		{"in place, agent failed to start", Files{AgentInPlace: true}, small, exit(3), true, "", false, "start the guest agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := firstSession(tt.f, tt.plan)
			if s.starts != tt.wantStarts || strings.HasSuffix(s.script, "; exec "+agentStart) != tt.wantStarts {
				t.Fatalf("starts = %v, script ends %q; want starts %v", s.starts, s.script[max(len(s.script)-80, 0):], tt.wantStarts)
			}
			if in, _ := io.ReadAll(s.stdin(tt.plan, strings.NewReader("secrets"))); (string(in) == "secrets") != tt.wantStarts {
				t.Errorf("stdin = %.20q", in)
			}
			shipped, started, err := s.outcome(tt.err)
			if shipped != tt.wantShipped || started != tt.wantStarted || (tt.wantErr == "") != (err == nil) ||
				(err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("outcome = %q, %v, %v; want %q, %v, %q", shipped, started, err, tt.wantShipped, tt.wantStarted, tt.wantErr)
			}
			if tt.err != nil && tt.wantErr == "" && !strings.Contains(s.noDisk, "agent") {
				t.Errorf("fell back without saying why: %q", s.noDisk)
			}
		})
	}
}
