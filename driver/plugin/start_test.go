package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/agentdisk"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
)

func TestStartTaskBoots(t *testing.T) {
	tests := []struct {
		name       string
		tc         TaskConfig
		wantCalls  []string
		never      []string
		wantEvents []string
	}{
		{
			name:       "plain VM",
			tc:         TaskConfig{Image: "omnios"},
			wantCalls:  []string{"image omnios", "create-disk", "start", "wait-ready"},
			never:      []string{"job", "launch", "kill"},
			wantEvents: []string{"Fetching image", "Booting", "Started"},
		},
		{
			name:       "job plan",
			tc:         TaskConfig{Image: "omnios", Plan: "local/plan.json", Secrets: "secrets/job.json"},
			wantCalls:  []string{"image omnios", "create-disk", "start", "wait-ready", "job", "launch"},
			never:      []string{"kill"},
			wantEvents: []string{"Fetching image", "Booting", "Started", "Running job", "Agent started"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			cfg := h.taskConfig(tt.tc)
			th, net, err := h.d.StartTask(cfg)
			if err != nil {
				t.Fatalf("StartTask: %v", err)
			}
			assertCalls(t, vms, tt.wantCalls, tt.never)
			h.waitForEvents(tt.wantEvents...)

			st := driverState(t, th)
			if st.Process != vms.machine(t, 0).proc {
				t.Errorf("driver state has process %+v, want the VM's %+v", st.Process, vms.machine(t, 0).proc)
			}
			assertHostKeyPinned(t, cfg, st, vms.logins[0])
			if net.PortMap["ssh"] != st.SSHPort || net.IP != st.SSHHost || st.SSHPort == 0 {
				t.Errorf("driver network %+v does not match the state's ssh %s:%d", net, st.SSHHost, st.SSHPort)
			}
			login := vms.logins[0]
			if login.Addr != fmt.Sprintf("127.0.0.1:%d", st.SSHPort) || login.User != "solstice" || len(login.PrivatePEM) == 0 {
				t.Errorf("the guest was asked for a login at %s as %q (key %d bytes)", login.Addr, login.User, len(login.PrivatePEM))
			}
			status, err := h.d.InspectTask(cfg.ID)
			if err != nil || status.State != drivers.TaskStateRunning {
				t.Fatalf("InspectTask = %+v, %v; want running", status, err)
			}
			if tt.tc.Plan == "" {
				if st.Events != "" {
					t.Errorf("a plain VM has an events file %q", st.Events)
				}
				if vms.specs[0].AgentDisk != "" {
					t.Errorf("a plain VM has an agent disk %q", vms.specs[0].AgentDisk)
				}
				return
			}
			if st.Events != eventsPath(cfg) {
				t.Errorf("state events = %q, want %q", st.Events, eventsPath(cfg))
			}
			vms.waitForCall(t, "follow")
			files := vms.launched[0]
			dir := cfg.TaskDir().Dir
			if files.Agent != filepath.Join(h.d.cfg().GuestAgentDir, "solstice-guest-illumos-amd64") ||
				files.Plan != filepath.Join(dir, "local/plan.json") ||
				files.Secrets != filepath.Join(dir, "secrets/job.json") || files.Bundle != "" {
				t.Errorf("job files = %+v", files)
			}
			assertAgentDisk(t, h, vms.specs[0], files)
		})
	}
}

// TestStartTaskFails checks that a start that fails at any step says why,
// tells whoever follows the job that the infrastructure failed, and leaves
// no process or file behind.
func TestStartTaskFails(t *testing.T) {
	plan := TaskConfig{Image: "omnios", Plan: "local/plan.json"}
	tests := []struct {
		name      string
		tc        TaskConfig
		setup     func(*fakeVMs, *harness)
		wantErr   string
		wantCalls []string
		never     []string
		wantInfra bool // the events file carries an infrastructure error
	}{
		{
			name:    "unknown image",
			tc:      TaskConfig{Image: "openindiana", Plan: "local/plan.json"},
			wantErr: `unknown image "openindiana": this client's catalog has broken, omnios`,
			never:   []string{"image openindiana", "start"},
		},
		{
			name:    "misconfigured image",
			tc:      TaskConfig{Image: "broken"},
			wantErr: `image "broken" is misconfigured on this client`,
			never:   []string{"image broken", "start"},
		},
		{
			name:    "bad task config",
			tc:      TaskConfig{Image: "omnios", BootTimeout: "soon"},
			wantErr: `boot_timeout = "soon"`,
			never:   []string{"image omnios"},
		},
		{
			name: "image missing",
			tc:   plan,
			setup: func(v *fakeVMs, _ *harness) {
				v.imageErr = errors.New(`image "omnios": open /images/omnios.qcow2: no such file or directory`)
			},
			wantErr:   "open /images/omnios.qcow2: no such file or directory",
			wantCalls: []string{"image omnios"},
			never:     []string{"create-disk", "start"},
			wantInfra: true,
		},
		{
			name:      "disk creation fails",
			tc:        plan,
			setup:     func(v *fakeVMs, _ *harness) { v.diskErr = errors.New("qemu-img: No space left on device") },
			wantErr:   `image "omnios": qemu-img: No space left on device`,
			wantCalls: []string{"create-disk"},
			never:     []string{"start"},
			wantInfra: true,
		},
		{
			name:      "qemu does not start",
			tc:        plan,
			setup:     func(v *fakeVMs, _ *harness) { v.startErr = errors.New("qemu exited with code 1 during start-up") },
			wantErr:   `start qemu for image "omnios": qemu exited with code 1 during start-up`,
			wantCalls: []string{"start"},
			never:     []string{"wait-ready", "kill"},
			wantInfra: true,
		},
		{
			name: "VM crashes during boot",
			tc:   plan,
			setup: func(v *fakeVMs, _ *harness) {
				v.boot = func(ctx context.Context, m *fakeMachine) error {
					m.exit(1)
					<-ctx.Done()
					return ctx.Err()
				}
			},
			wantErr:   `image "omnios": the VM powered off or crashed during boot (qemu exit code 1)`,
			wantCalls: []string{"start", "wait-ready", "guest-close", "kill"},
			never:     []string{"job"},
			wantInfra: true,
		},
		{
			name: "boot timeout",
			tc:   TaskConfig{Image: "omnios", Plan: "local/plan.json", BootTimeout: "200ms"},
			setup: func(v *fakeVMs, _ *harness) {
				v.boot = func(ctx context.Context, _ *fakeMachine) error {
					<-ctx.Done()
					return ctx.Err()
				}
			},
			wantErr:   `image "omnios": boot timeout: no ssh login within 200ms`,
			wantCalls: []string{"start", "wait-ready", "kill"},
			never:     []string{"job"},
			wantInfra: true,
		},
		{
			name: "guest refuses the login",
			tc:   plan,
			setup: func(v *fakeVMs, _ *harness) {
				v.boot = func(context.Context, *fakeMachine) error {
					return errors.New("log into the guest: read task ssh key: permission denied")
				}
			},
			wantErr:   `image "omnios": log into the guest: read task ssh key: permission denied`,
			wantCalls: []string{"wait-ready", "kill"},
			wantInfra: true,
		},
		{
			name: "no guest agent for the image's OS",
			tc:   plan,
			setup: func(_ *fakeVMs, h *harness) {
				os.Remove(filepath.Join(h.d.cfg().GuestAgentDir, "solstice-guest-illumos-amd64"))
			},
			wantErr:   "guest agent for illumos",
			wantCalls: []string{"wait-ready", "kill"},
			never:     []string{"launch"},
			wantInfra: true,
		},
		{
			name: "job launch fails",
			tc:   plan,
			setup: func(v *fakeVMs, _ *harness) {
				v.launchErr = errors.New("upload /var/tmp/solstice/plan.json: broken pipe")
			},
			wantErr:   "launch the job in the guest: upload /var/tmp/solstice/plan.json: broken pipe",
			wantCalls: []string{"job", "launch", "kill"},
			never:     []string{"follow"},
			wantInfra: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			if tt.setup != nil {
				tt.setup(vms, h)
			}
			cfg := h.taskConfig(tt.tc)
			th, _, err := h.d.StartTask(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("StartTask error = %v, want %q", err, tt.wantErr)
			}
			if th != nil {
				t.Error("a failed start returned a task handle")
			}
			assertCalls(t, vms, tt.wantCalls, tt.never)
			assertNothingLeft(t, h, cfg)
			msg := infraError(t, cfg)
			switch {
			case tt.wantInfra && !strings.Contains(msg, tt.wantErr):
				t.Errorf("infrastructure error event says %q, want %q", msg, tt.wantErr)
			case !tt.wantInfra && msg != "":
				t.Errorf("unexpected infrastructure error event %q", msg)
			}
		})
	}
}

// assertNothingLeft checks that a failed start undid all it did.
func assertNothingLeft(t *testing.T, h *harness, cfg *drivers.TaskConfig) {
	t.Helper()
	for _, p := range []string{
		filepath.Join(cfg.TaskDir().Dir, "solstice-vm"),
		filepath.Join(cfg.TaskDir().SecretsDir, "solstice-vm-ssh-key"),
		socketPath(h.d.runDir, cfg.ID),
	} {
		if exists(p) {
			t.Errorf("%s is left behind", p)
		}
	}
	for i := range h.vms.machines {
		select {
		case <-h.vms.machine(t, i).Exited():
		default:
			t.Errorf("VM %d still runs", i)
		}
	}
	if _, err := h.d.InspectTask(cfg.ID); !errors.Is(err, drivers.ErrTaskNotFound) {
		t.Errorf("InspectTask after a failed start: %v, want ErrTaskNotFound", err)
	}
}

func TestStartTaskTwice(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg, _ := h.start(TaskConfig{Image: "omnios"})
	if _, _, err := h.d.StartTask(cfg); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second StartTask = %v, want already running", err)
	}
	if n := len(vms.machines); n != 1 {
		t.Fatalf("%d VMs started, want 1", n)
	}
}

// TestStartTaskSeedFormats: the image's seed_format decides the seed's
// volume, how QEMU attaches it and who gets the login key: nocloud names
// the image's user with sudo; nocloud-fat hands the key to the image's own
// user as meta-data public-keys. Both pin the host key.
func TestStartTaskSeedFormats(t *testing.T) {
	for _, tt := range []struct {
		format   string
		file     string
		disk     bool
		metaKeys bool
	}{
		{"nocloud", "seed.iso", false, false},
		{"nocloud-fat", "seed.img", true, true},
	} {
		t.Run(tt.format, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			h.d.cfg().Images["omnios"].SeedFormat = tt.format
			cfg, th := h.start(TaskConfig{Image: "omnios"})
			st := driverState(t, th)
			if filepath.Base(st.Seed) != tt.file || vms.specs[0].Seed != st.Seed || vms.specs[0].SeedDisk != tt.disk {
				t.Fatalf("seed %s attached as disk=%v, want %s as disk=%v", st.Seed, vms.specs[0].SeedDisk, tt.file, tt.disk)
			}
			assertHostKeyPinned(t, cfg, st, vms.logins[0])
			login := strings.TrimSpace(string(mustPublicKey(t, vms.logins[0].PrivatePEM)))
			meta, user := string(seedFile(t, st.Seed, "meta-data")), string(seedFile(t, st.Seed, "user-data"))
			inMeta, inUsers := strings.Contains(meta, login), strings.Contains(user, "users:")
			if inMeta != tt.metaKeys || inUsers == tt.metaKeys || strings.Contains(user, login) == tt.metaKeys {
				t.Errorf("login key in meta-data %v, users in user-data %v:\n%s\n%s", inMeta, inUsers, meta, user)
			}
		})
	}
}

// assertAgentDisk: a job's VM boots with the shared read-only disk of its
// agent under cache_dir, and the runner is told about the same disk.
func assertAgentDisk(t *testing.T, h *harness, spec qemu.Spec, files jobrun.Files) {
	t.Helper()
	if files.AgentDisk == nil || spec.AgentDisk != files.AgentDisk.Path {
		t.Fatalf("agent disk: qemu got %q, the runner %+v (%s)", spec.AgentDisk, files.AgentDisk, files.NoDisk)
	}
	if filepath.Dir(spec.AgentDisk) != filepath.Join(h.d.cfg().CacheDir, "agent-disks") {
		t.Errorf("agent disk %s is not under cache_dir/agent-disks", spec.AgentDisk)
	}
	img, err := os.ReadFile(spec.AgentDisk)
	if err != nil || !strings.HasPrefix(string(img), files.AgentDisk.Header+"\n") ||
		string(img[agentdisk.BlockSize:agentdisk.BlockSize+len("agent")]) != "agent" {
		t.Errorf("agent disk %s does not carry the agent after its header (%v)", spec.AgentDisk, err)
	}
}

// TestEventsFileExistsBeforeTheBoot: a job's events file is there, empty,
// from the start of the task, so a follower's first open of it succeeds
// and waits for the first event instead of retrying while the VM boots.
func TestEventsFileExistsBeforeTheBoot(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg := h.taskConfig(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
	size := int64(-1)
	vms.onImage = func() {
		if st, err := os.Stat(eventsPath(cfg)); err == nil {
			size = st.Size()
		}
	}
	if _, _, err := h.d.StartTask(cfg); err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	if size != 0 {
		t.Fatalf("as the image was fetched the events file had size %d, want an empty file (-1: none)", size)
	}
}
