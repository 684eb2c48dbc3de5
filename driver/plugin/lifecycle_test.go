package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// TestWaitTask checks the exit code each way a task can end; the shims
// tell the user which it was from this code alone.
func TestWaitTask(t *testing.T) {
	plan := TaskConfig{Image: "omnios", Plan: "local/plan.json"}
	tests := []struct {
		name      string
		tc        TaskConfig
		end       func(t *testing.T, vms *fakeVMs)
		wantCode  int
		wantErr   string
		wantCalls []string
	}{
		{
			name:     "guest powers itself off",
			tc:       TaskConfig{Image: "omnios"},
			end:      func(t *testing.T, v *fakeVMs) { v.machine(t, 0).exit(0) },
			wantCode: contract.ExitSuccess,
		},
		{
			name:     "qemu crashes",
			tc:       TaskConfig{Image: "omnios"},
			end:      func(t *testing.T, v *fakeVMs) { v.machine(t, 0).exit(1) },
			wantCode: contract.ExitInfrastructure,
			wantErr:  "qemu exited unexpectedly with code 1",
		},
		{
			name:      "job succeeds, then the VM is powered off",
			tc:        plan,
			end:       func(t *testing.T, v *fakeVMs) { v.job(t, 0).end(contract.ExitSuccess) },
			wantCode:  contract.ExitSuccess,
			wantCalls: []string{"follow", "power-down"},
		},
		{
			name:      "job fails",
			tc:        plan,
			end:       func(t *testing.T, v *fakeVMs) { v.job(t, 0).end(contract.ExitJobFailed) },
			wantCode:  contract.ExitJobFailed,
			wantCalls: []string{"follow", "power-down"},
		},
		{
			name:     "VM dies mid-job",
			tc:       plan,
			end:      func(t *testing.T, v *fakeVMs) { v.machine(t, 0).exit(-1) },
			wantCode: contract.ExitInfrastructure,
			wantErr:  "the VM",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			cfg, _ := h.start(tt.tc)
			if tt.tc.Plan != "" {
				vms.waitForCall(t, "follow")
			}
			tt.end(t, vms)
			res := h.wait(cfg.ID)
			if res.ExitCode != tt.wantCode {
				t.Errorf("exit code %d (%s), want %d (%s); err %v", res.ExitCode, contract.DescribeExit(res.ExitCode),
					tt.wantCode, contract.DescribeExit(tt.wantCode), res.Err)
			}
			if tt.wantErr != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.wantErr)) {
				t.Errorf("exit error %v, want %q", res.Err, tt.wantErr)
			}
			assertCalls(t, vms, append(tt.wantCalls, "guest-close", "close"), nil)
			status, err := h.d.InspectTask(cfg.ID)
			if err != nil || status.State != drivers.TaskStateExited || status.ExitResult.ExitCode != tt.wantCode {
				t.Errorf("InspectTask = %+v, %v", status, err)
			}
		})
	}
}

func TestStopTask(t *testing.T) {
	plan := TaskConfig{Image: "omnios", Plan: "local/plan.json"}
	ignore := func(*fakeMachine) error { return nil }
	tests := []struct {
		name      string
		tc        TaskConfig
		setup     func(*fakeVMs)
		timeout   time.Duration
		wantCalls []string
		never     []string
		minTook   time.Duration // the guest was given the whole timeout
		maxTook   time.Duration
	}{
		{
			name:      "guest powers off at the button",
			tc:        TaskConfig{Image: "omnios"},
			timeout:   time.Minute,
			wantCalls: []string{"power-down"},
			never:     []string{"kill"},
			maxTook:   10 * time.Second,
		},
		{
			name:      "guest ignores the button until the timeout",
			tc:        TaskConfig{Image: "omnios"},
			setup:     func(v *fakeVMs) { v.powerDown = ignore },
			timeout:   300 * time.Millisecond,
			wantCalls: []string{"power-down", "kill"},
			minTook:   300 * time.Millisecond,
			maxTook:   10 * time.Second,
		},
		{
			name:      "no control socket: killed at once",
			tc:        TaskConfig{Image: "omnios"},
			setup:     func(v *fakeVMs) { v.powerDown = func(*fakeMachine) error { return vm.ErrNoControl } },
			timeout:   time.Minute,
			wantCalls: []string{"power-down", "kill"},
			maxTook:   10 * time.Second,
		},
		{
			name:      "job is cancelled before the power-off",
			tc:        plan,
			timeout:   time.Minute,
			wantCalls: []string{"cancel", "power-down"},
			never:     []string{"kill"},
			maxTook:   10 * time.Second,
		},
		{
			name: "job ignores the cancel",
			tc:   plan,
			setup: func(v *fakeVMs) {
				v.cancel = func(*fakeJob) error { return nil }
				v.powerDown = ignore
			},
			timeout:   400 * time.Millisecond,
			wantCalls: []string{"cancel", "power-down", "kill"},
			minTook:   400 * time.Millisecond,
			maxTook:   10 * time.Second,
		},
		{
			name: "guest ignoring ACPI stops by its OS's command",
			tc:   plan,
			setup: func(v *fakeVMs) {
				v.powerDown = ignore
				v.powerOff = func(m *fakeMachine, _ string) error { go m.exit(0); return nil }
			},
			timeout:   time.Minute,
			wantCalls: []string{"cancel", "poweroff-command /usr/sbin/poweroff"},
			never:     []string{"power-down", "kill"},
			maxTook:   10 * time.Second,
		},
		{
			name: "power-off command refused: the ACPI button next",
			tc:   TaskConfig{Image: "omnios"},
			setup: func(v *fakeVMs) {
				v.powerOff = func(*fakeMachine, string) error { return errors.New("sudo: a password is required") }
			},
			timeout:   time.Minute,
			wantCalls: []string{"poweroff-command /usr/sbin/poweroff", "power-down"},
			never:     []string{"kill"},
			maxTook:   10 * time.Second,
		},
		{
			name: "command taken but the guest hangs: ACPI, then kill in time",
			tc:   TaskConfig{Image: "omnios"},
			setup: func(v *fakeVMs) {
				v.powerDown = ignore
				v.powerOff = func(*fakeMachine, string) error { return nil }
			},
			timeout:   400 * time.Millisecond,
			wantCalls: []string{"poweroff-command /usr/sbin/poweroff", "power-down", "kill"},
			minTook:   400 * time.Millisecond,
			maxTook:   10 * time.Second,
		},
		{
			name: "guest unreachable for the cancel",
			tc:   plan,
			setup: func(v *fakeVMs) {
				v.cancel = func(*fakeJob) error { return errors.New("ssh: connection refused") }
			},
			timeout:   time.Minute,
			wantCalls: []string{"cancel", "power-down"},
			never:     []string{"kill"},
			maxTook:   10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			if tt.setup != nil {
				tt.setup(vms)
			}
			h := newHarness(t, vms)
			cfg, _ := h.start(tt.tc)
			if tt.tc.Plan != "" {
				vms.waitForCall(t, "follow")
			}
			start := time.Now()
			if err := h.d.StopTask(cfg.ID, tt.timeout, "SIGINT"); err != nil {
				t.Fatalf("StopTask: %v", err)
			}
			took := time.Since(start)
			if took < tt.minTook || took > tt.maxTook {
				t.Errorf("StopTask took %s, want %s to %s", took, tt.minTook, tt.maxTook)
			}
			assertCalls(t, vms, tt.wantCalls, tt.never)
			if res := h.wait(cfg.ID); res.ExitCode != contract.ExitCancelled {
				t.Errorf("a stopped task exited with %d (%v), want %d", res.ExitCode, res.Err, contract.ExitCancelled)
			}
		})
	}
}

func TestStopTaskEdges(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	if err := h.d.StopTask("no-such-task", time.Second, ""); !errors.Is(err, drivers.ErrTaskNotFound) {
		t.Errorf("StopTask of an unknown task = %v", err)
	}
	cfg, _ := h.start(TaskConfig{Image: "omnios"})
	vms.machine(t, 0).exit(0)
	h.wait(cfg.ID)
	if err := h.d.StopTask(cfg.ID, time.Second, ""); err != nil {
		t.Fatalf("StopTask of an exited task: %v", err)
	}
	assertCalls(t, vms, nil, []string{"power-down", "kill"})
	if res := h.wait(cfg.ID); res.ExitCode != contract.ExitSuccess {
		t.Errorf("stopping an exited task changed its result to %d", res.ExitCode)
	}
}

func TestDestroyTask(t *testing.T) {
	tests := []struct {
		name      string
		exited    bool // the VM is gone before DestroyTask
		force     bool
		wantErr   string
		wantCalls []string
		never     []string
	}{
		{name: "running task is refused without force", wantErr: "without force", never: []string{"kill"}},
		{name: "running task is killed with force", force: true, wantCalls: []string{"kill"}},
		{name: "exited task", exited: true, never: []string{"kill"}},
		{name: "exited task with force", exited: true, force: true, never: []string{"kill"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			cfg, th := h.start(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
			st := driverState(t, th)
			files := []string{st.VMDir, st.Overlay, st.Seed, st.KeyPath, st.QMPSocket}
			for _, p := range files {
				if !exists(p) {
					t.Fatalf("the started task has no %s", p)
				}
			}
			writeEvents(t, cfg, `{"seq":1,"type":"job_started"}`)
			if tt.exited {
				vms.job(t, 0).end(contract.ExitSuccess)
				h.wait(cfg.ID)
			}
			err := h.d.DestroyTask(cfg.ID, tt.force)
			assertCalls(t, vms, tt.wantCalls, tt.never)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DestroyTask = %v, want %q", err, tt.wantErr)
				}
				for _, p := range files {
					if !exists(p) {
						t.Errorf("a refused destroy removed %s", p)
					}
				}
				if _, err := h.d.InspectTask(cfg.ID); err != nil {
					t.Errorf("a refused destroy forgot the task: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DestroyTask: %v", err)
			}
			for _, p := range files {
				if exists(p) {
					t.Errorf("%s is left behind", p)
				}
			}
			if !exists(eventsPath(cfg)) {
				t.Error("DestroyTask removed the job's events, which the shims read from the allocation")
			}
			if _, err := h.d.InspectTask(cfg.ID); !errors.Is(err, drivers.ErrTaskNotFound) {
				t.Errorf("InspectTask after destroy = %v, want ErrTaskNotFound", err)
			}
		})
	}
}

func TestDestroyUnknownTask(t *testing.T) {
	h := newHarness(t, &fakeVMs{})
	if err := h.d.DestroyTask("no-such-task", true); !errors.Is(err, drivers.ErrTaskNotFound) {
		t.Errorf("DestroyTask of an unknown task = %v", err)
	}
}

// writeEvents stands in for the events a job's runner appends.
func writeEvents(t *testing.T, cfg *drivers.TaskConfig, lines ...string) {
	t.Helper()
	p := eventsPath(cfg)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
