package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/internal/contract"
)

const testDebugKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3k5DTGmXc0f0Yk3c8s8kqG3tJb0x6jvI1i0JwL0XyZ alice@laptop"

// TestDebugSessionRequests checks what a plan's debug request does when
// its job ends: only a failed job gets a session, and one that cannot
// have one says why in its events, after which the VM powers off as
// before and the task keeps the job's exit code.
func TestDebugSessionRequests(t *testing.T) {
	tests := []struct {
		name      string
		host      string // debug_ssh_host
		port      bool   // the task names a debug_port
		debug     bool   // the plan asks for a session
		end       int
		wantEnded string // debug_ended's message prefix; "" for no debug events
		never     []string
	}{
		{name: "no request", host: "ci.example.org", port: true, end: contract.ExitJobFailed, never: []string{"forward-add 127.0.0.1:31022"}},
		{name: "job succeeds", host: "ci.example.org", port: true, debug: true, end: contract.ExitSuccess},
		{name: "job cancelled", host: "ci.example.org", port: true, debug: true, end: contract.ExitCancelled},
		{name: "off on this client", port: true, debug: true, end: contract.ExitJobFailed,
			wantEnded: "No debug session: debug sessions are off on this Nomad client"},
		{name: "no debug port", host: "ci.example.org", debug: true, end: contract.ExitJobFailed,
			wantEnded: "No debug session: the job's parent job names no debug_port"},
		// The fake guest has no sshd: the keys cannot go in, so the port
		// never opens.
		{name: "guest unreachable", host: "ci.example.org", port: true, debug: true, end: contract.ExitJobFailed,
			wantEnded: "No debug session: open the debug session: install the user's keys in the guest",
			never:     []string{"forward-add 127.0.0.1:31022"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			conf := *h.d.cfg()
			conf.DebugSSHHost = tt.host
			h.d.configure(&conf, nil, vms)
			tc := TaskConfig{Image: "omnios", Plan: "local/plan.json"}
			if tt.port {
				tc.DebugPort = "debug"
			}
			cfg := h.taskConfig(tc)
			cfg.Resources = &drivers.Resources{Ports: &structs.AllocatedPorts{{Label: "debug", Value: 31022, HostIP: "127.0.0.1"}}}
			writeDebugPlan(t, cfg, tt.debug)
			if _, _, err := h.d.StartTask(cfg); err != nil {
				t.Fatalf("StartTask: %v", err)
			}
			vms.job(t, 0).end(tt.end)
			if res := h.wait(cfg.ID); res.ExitCode != tt.end {
				t.Fatalf("exit code %d, want the job's %d", res.ExitCode, tt.end)
			}
			assertCalls(t, vms, []string{"follow", "power-down"}, tt.never)
			ended := debugEnded(t, cfg)
			if !strings.HasPrefix(ended, tt.wantEnded) || (tt.wantEnded == "") != (ended == "") {
				t.Fatalf("debug_ended %q, want %q", ended, tt.wantEnded)
			}
			uploaded, err := os.ReadFile(vms.launched[0].Plan)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(uploaded, []byte("AAAAC3Nza")) {
				t.Fatalf("the guest's plan carries the user's keys:\n%s", uploaded)
			}
		})
	}
}

func writeDebugPlan(t *testing.T, cfg *drivers.TaskConfig, debug bool) {
	t.Helper()
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "build"},
		Steps: []contract.Step{{Run: "false"}}}
	if debug {
		p.Debug = &contract.DebugSSH{User: "alice", Keys: []string{testDebugKey}}
	}
	var buf bytes.Buffer
	if err := contract.EncodePlanCompressed(&buf, p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.TaskDir().Dir, "local", "plan.json"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// debugEnded is the message of the task's debug_ended event, "" when it
// has no debug events.
func debugEnded(t *testing.T, cfg *drivers.TaskConfig) string {
	t.Helper()
	data, err := os.ReadFile(eventsPath(cfg))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	// The driver creates the file empty at the start (createEvents).
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Fatalf("events file: %v", err)
		}
		if ev.Type == contract.TypeDebugEnded {
			return ev.Message
		}
	}
	return ""
}

// TestStopEndsDebugSession checks that stopping the task (a cancel in the
// forge, nomad job stop) ends a running debug session at once, and that
// the task still ends with the job's failure, not as cancelled.
func TestStopEndsDebugSession(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg, _ := h.start(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
	th, ok := h.d.tasks.Get(cfg.ID)
	if !ok {
		t.Fatal("no handle")
	}
	started, ended := make(chan struct{}), make(chan struct{})
	th.SetDebug(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		close(ended)
	})
	vms.job(t, 0).end(contract.ExitJobFailed)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the failed job's session never started")
	}
	if err := h.d.StopTask(cfg.ID, 5*time.Second, "SIGINT"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the session outlived the stop")
	}
	if res := h.wait(cfg.ID); res.ExitCode != contract.ExitJobFailed {
		t.Fatalf("exit code %d, want the job's failure %d", res.ExitCode, contract.ExitJobFailed)
	}
}

// TestRecoverDuringDebugSession: a plugin restarted while a failed job's
// session was open cannot watch it any more; the adopted task records its
// end, powers the VM off and keeps the job's failure, without asking the
// guest agent for events past its stream's end.
func TestRecoverDuringDebugSession(t *testing.T) {
	before := newHarness(t, &fakeVMs{})
	cfg, th := before.start(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
	p := eventsPath(cfg)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	finished := contract.Event{Seq: 5, Time: time.Now().UTC(), Type: contract.TypeJobFinished, Conclusion: contract.Failure}
	session := contract.Event{Seq: 6, Time: time.Now().UTC(), Type: contract.TypeDebugSession,
		Debug: &contract.DebugSession{Host: "h", Port: 31022, User: "solstice", Expires: time.Now().Add(time.Hour)}}
	if err := os.WriteFile(p, append(contract.MarshalEvent(&finished), contract.MarshalEvent(&session)...), 0o644); err != nil {
		t.Fatal(err)
	}
	vms := &fakeVMs{}
	after := newHarness(t, vms)
	if err := after.d.RecoverTask(th.Copy()); err != nil {
		t.Fatalf("RecoverTask: %v", err)
	}
	if res := after.wait(cfg.ID); res.ExitCode != contract.ExitJobFailed {
		t.Fatalf("exit code %d, want the job's failure", res.ExitCode)
	}
	assertCalls(t, vms, []string{"attach", "power-down"}, []string{"job", "follow"})
	if got := debugEnded(t, cfg); !strings.Contains(got, "the Solstice driver restarted during the session") {
		t.Fatalf("debug_ended %q", got)
	}
}
