package jobrun

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/guestssh"
)

// TestPrepareScript runs the first session's script with the host's sh
// (as root here, so without sudo) under a temporary root, with copy
// scripts standing in for agentdisk's.
func TestPrepareScript(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("run as root, as the suite does: the script runs its copy through sudo -n unless it runs as root")
	}
	tests := []struct {
		name      string
		copyAgent string
		wantCode  int
		wantAgent string // "" for none
	}{
		{"no disk", "", 0, ""},
		{"agent from the disk", `printf 'agent bytes'`, 0, "agent bytes"},
		{"no disk found", `exit 3`, 3, ""},
		{"copy fails half way", `printf 'half'; exit 1`, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "solstice")
			code, _ := runSh(t, prepareScript(root, tt.copyAgent), `{"version":1}`)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d", code, tt.wantCode)
			}
			if plan, err := os.ReadFile(filepath.Join(root, "plan.json")); err != nil || string(plan) != `{"version":1}` {
				t.Errorf("plan.json = %q, %v", plan, err)
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
			if left, _ := filepath.Glob(filepath.Join(root, "*", "*.tmp")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
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
	code, _ := runSh(t, prepareScript(filepath.Join(file, "solstice"), `printf agent`), "{}")
	if code != prepareFailed {
		t.Fatalf("exit %d, want %d", code, prepareFailed)
	}
}

func TestDiskFailure(t *testing.T) {
	for _, tt := range []struct {
		ee   guestssh.ExitError
		want string
	}{
		{guestssh.ExitError{Code: 3}, "the guest found no agent disk"},
		{guestssh.ExitError{Code: 1, Stderr: "sudo: a password is required\n"}, `exit 1: "sudo: a password is required"`},
		{guestssh.ExitError{Code: 1, Stderr: strings.Repeat("x", 5000)}, `exit 1: "` + strings.Repeat("x", 200) + `"`},
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
