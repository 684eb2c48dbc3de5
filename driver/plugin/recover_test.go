package plugin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/internal/contract"
)

// TestRecoverTask starts a task in one driver and recovers it in another,
// as a restarted plugin would from the handle Nomad kept.
func TestRecoverTask(t *testing.T) {
	tests := []struct {
		name      string
		tc        TaskConfig
		mangle    func(*drivers.TaskHandle) *drivers.TaskHandle
		attachErr error
		wantErr   string
		wantCalls []string
		never     []string
	}{
		{
			name:      "plain VM is reattached",
			tc:        TaskConfig{Image: "omnios"},
			wantCalls: []string{"attach"},
			never:     []string{"job", "launch"},
		},
		{
			name:      "job is followed on, not launched again",
			tc:        TaskConfig{Image: "omnios", Plan: "local/plan.json"},
			wantCalls: []string{"attach", "job", "follow"},
			never:     []string{"launch"},
		},
		{
			name:      "VM is gone",
			tc:        TaskConfig{Image: "omnios"},
			attachErr: fmt.Errorf("attach to qemu pid 1001: %w", qemu.ErrGone),
			wantErr:   "recover task build: attach to qemu pid 1001: qemu: process is gone",
			wantCalls: []string{"attach"},
		},
		{
			name:    "undecodable state",
			tc:      TaskConfig{Image: "omnios"},
			mangle:  func(th *drivers.TaskHandle) *drivers.TaskHandle { th.DriverState = []byte("\xc1garbage"); return th },
			wantErr: "recover task build: decode state",
			never:   []string{"attach"},
		},
		{
			name:    "no handle",
			tc:      TaskConfig{Image: "omnios"},
			mangle:  func(*drivers.TaskHandle) *drivers.TaskHandle { return nil },
			wantErr: "no task handle",
			never:   []string{"attach"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := newHarness(t, &fakeVMs{})
			cfg, th := before.start(tt.tc)
			stored := th.Copy()
			if tt.mangle != nil {
				stored = tt.mangle(stored)
			}
			vms := &fakeVMs{attachErr: tt.attachErr}
			after := newHarness(t, vms)
			err := after.d.RecoverTask(stored)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RecoverTask = %v, want %q", err, tt.wantErr)
				}
				if _, err := after.d.InspectTask(cfg.ID); !errors.Is(err, drivers.ErrTaskNotFound) {
					t.Errorf("a failed recovery left the task known: %v", err)
				}
				assertCalls(t, vms, tt.wantCalls, tt.never)
				return
			}
			if err != nil {
				t.Fatalf("RecoverTask: %v", err)
			}
			if tt.tc.Plan != "" {
				vms.waitForCall(t, "follow")
			}
			assertCalls(t, vms, tt.wantCalls, tt.never)
			st := driverState(t, th)
			if got := vms.attached[0]; got.Process != st.Process || got.QMPSocket != st.QMPSocket {
				t.Errorf("attached to %+v, want the recorded %+v and %s", got, st.Process, st.QMPSocket)
			}
			status, err := after.d.InspectTask(cfg.ID)
			if err != nil || status.State != drivers.TaskStateRunning ||
				status.DriverAttributes["pid"] != fmt.Sprint(st.Process.PID) {
				t.Fatalf("InspectTask = %+v, %v; want running as pid %d", status, err, st.Process.PID)
			}
			if tt.tc.Plan != "" {
				if got := vms.job(t, 0).spec.Events; got != eventsPath(cfg) {
					t.Errorf("recovered job follows %q, want %q", got, eventsPath(cfg))
				}
				vms.job(t, 0).end(contract.ExitJobFailed)
				if res := after.wait(cfg.ID); res.ExitCode != contract.ExitJobFailed {
					t.Errorf("recovered job exited with %d, want %d", res.ExitCode, contract.ExitJobFailed)
				}
			}
		})
	}
}

func TestRecoverTaskKnown(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	_, th := h.start(TaskConfig{Image: "omnios"})
	if err := h.d.RecoverTask(th.Copy()); err != nil {
		t.Fatalf("RecoverTask of a running task: %v", err)
	}
	assertCalls(t, vms, nil, []string{"attach"})
}

// TestRecoverThenStop checks that an adopted VM is stopped like one this
// process started: power button first.
func TestRecoverThenStop(t *testing.T) {
	before := newHarness(t, &fakeVMs{})
	cfg, th := before.start(TaskConfig{Image: "omnios"})
	vms := &fakeVMs{}
	after := newHarness(t, vms)
	if err := after.d.RecoverTask(th.Copy()); err != nil {
		t.Fatal(err)
	}
	if err := after.d.StopTask(cfg.ID, time.Minute, ""); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, vms, []string{"attach", "power-down"}, nil)
	if res := after.wait(cfg.ID); res.ExitCode != contract.ExitCancelled {
		t.Errorf("exit code %d, want %d", res.ExitCode, contract.ExitCancelled)
	}
}
