package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/qemuuser"
	"github.com/solstice-ci/solstice/driver/task"
)

// harness is a driver configured with one catalog image and a fake VM
// provider, as SetConfig would leave it but without touching the host
// (no firewall, no accelerator probe, no /run).
type harness struct {
	t   *testing.T
	d   *Driver
	vms *fakeVMs

	mu     sync.Mutex
	events []string // task event messages, in order
}

func newHarness(t *testing.T, vms *fakeVMs) *harness {
	t.Helper()
	d := New(hclog.NewNullLogger())
	t.Cleanup(d.Shutdown)
	t.Cleanup(vms.stopAll)
	agents := t.TempDir()
	if err := os.WriteFile(filepath.Join(agents, "solstice-guest-illumos-amd64"), []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CacheDir = t.TempDir()
	cfg.GuestAgentDir = agents
	cfg.Images["omnios"] = &ImageConfig{
		Source: "file:///images/omnios.qcow2", Format: "qcow2", Compression: "none",
		OS: "illumos", User: "solstice",
	}
	cfg.Images["broken"] = &ImageConfig{
		Source: "file:///images/broken.vmdk", Format: "vmdk", Compression: "none",
		OS: "illumos", User: "solstice",
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d.configure(cfg, nil, vms)
	d.setQEMUAccount(testQEMUAccount, nil)
	d.runDir = t.TempDir()
	h := &harness{t: t, d: d, vms: vms}
	h.collectEvents()
	return h
}

// testQEMUAccount is the account the harness's QEMUs run as, in the
// default isolation group.
var testQEMUAccount = qemuuser.Account{Name: "solstice-qemu", UID: 64998, GID: 64999}

func (h *harness) collectEvents() {
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	ch, err := h.d.TaskEvents(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	go func() {
		for ev := range ch {
			h.mu.Lock()
			h.events = append(h.events, ev.Message)
			h.mu.Unlock()
		}
	}()
}

// waitForEvents waits until the task events include want, in that order.
func (h *harness) waitForEvents(want ...string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.events)
		h.mu.Unlock()
		if isSubsequence(want, got) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("task events %q, want %q among them", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// taskConfig makes a task in a fresh allocation dir. A plan and secrets
// named in tc by a local relative path are created in the task dir.
func (h *harness) taskConfig(tc TaskConfig) *drivers.TaskConfig {
	h.t.Helper()
	cfg := &drivers.TaskConfig{
		ID:       "0123456789abcdef/build/" + strings.ReplaceAll(h.t.Name(), "/", "_"),
		Name:     "build",
		AllocID:  "0123456789abcdef",
		AllocDir: h.t.TempDir(),
	}
	dir := cfg.TaskDir()
	for _, p := range []string{dir.LocalDir, dir.SecretsDir, dir.SharedAllocDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, p := range []string{tc.Plan, tc.Secrets} {
		if filepath.IsLocal(p) {
			if err := os.WriteFile(filepath.Join(dir.Dir, p), []byte("{}"), 0o600); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	if tc.BootTimeout == "" {
		tc.BootTimeout = "10s"
	}
	if err := cfg.EncodeConcreteDriverConfig(&tc); err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

// start starts a task that must boot.
func (h *harness) start(tc TaskConfig) (*drivers.TaskConfig, *drivers.TaskHandle) {
	h.t.Helper()
	cfg := h.taskConfig(tc)
	th, _, err := h.d.StartTask(cfg)
	if err != nil {
		h.t.Fatalf("StartTask: %v", err)
	}
	return cfg, th
}

// wait returns the task's exit result.
func (h *harness) wait(id string) *drivers.ExitResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := h.d.WaitTask(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	res, ok := <-ch
	if !ok || res == nil {
		h.t.Fatal("WaitTask ended without a result")
	}
	return res
}

func driverState(t *testing.T, th *drivers.TaskHandle) task.State {
	t.Helper()
	var st task.State
	if err := th.GetDriverState(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// eventsPath is where a task's job events go (see launch.eventsPath).
func eventsPath(cfg *drivers.TaskConfig) string {
	return filepath.Join(cfg.TaskDir().SharedAllocDir, "solstice", cfg.Name, "events.jsonl")
}

// infraError returns the message of the one infrastructure error event a
// failed start leaves for the shims, or "" when there is no events file.
// Readers map that event to the infrastructure exit code.
func infraError(t *testing.T, cfg *drivers.TaskConfig) string {
	t.Helper()
	data, err := os.ReadFile(eventsPath(cfg))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var ev struct {
		Seq     int    `json:"seq"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev.Type != "infra_error" || ev.Seq != 1 {
		t.Fatalf("events file is not one infrastructure error event:\n%s", data)
	}
	return ev.Message
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isSubsequence reports whether want appears in got in order, not
// necessarily next to each other.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func assertCalls(t *testing.T, vms *fakeVMs, want, never []string) {
	t.Helper()
	got := vms.calls()
	if !isSubsequence(want, got) {
		t.Errorf("calls %q, want %q in that order", got, want)
	}
	for _, c := range never {
		if slices.Contains(got, c) {
			t.Errorf("calls %q include %q", got, c)
		}
	}
}
