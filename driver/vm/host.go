package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/image"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
)

// Host is the real Provider: this client's image cache, qemu-img, QEMU,
// SSH and the jobrun runner.
type Host struct {
	Images *image.Cache
	Disks  disk.Tool
	Log    hclog.Logger // may be nil
}

var _ Provider = (*Host)(nil)

// Image fetches through the client's cache.
func (h *Host) Image(ctx context.Context, src image.Source) (string, error) {
	return h.Images.Ensure(ctx, src)
}

// CreateDisk makes the overlay with qemu-img.
func (h *Host) CreateDisk(ctx context.Context, d Disk) error {
	if d.OnTemplate {
		return h.Disks.CreateCloneOverlay(ctx, d.Base, d.Path)
	}
	return h.Disks.CreateOverlay(ctx, d.Base, d.BaseFormat, d.Path, d.Size)
}

// Start launches QEMU.
func (h *Host) Start(ctx context.Context, spec qemu.Spec, out qemu.Output) (Machine, error) {
	inst, q, err := qemu.Start(ctx, spec, out)
	if err != nil {
		return nil, err
	}
	return newMachine(inst, q), nil
}

// qmpAttachTimeout bounds reconnecting to an adopted QEMU's control socket.
const qmpAttachTimeout = 10 * time.Second

// Attach adopts the process and reconnects QMP. Without QMP the VM still
// runs and is still adopted, but it can then only be killed, not powered
// off: saying so beats failing a task whose guest is fine.
func (h *Host) Attach(ctx context.Context, p qemu.Process, qmpSocket string) (Machine, error) {
	inst, err := qemu.Attach(p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, qmpAttachTimeout)
	defer cancel()
	q, err := qemu.DialQMP(ctx, qmpSocket)
	if err != nil {
		if h.Log != nil {
			h.Log.Warn("adopted vm without qmp: stop will kill it", "pid", p.PID, "qmp", qmpSocket, "error", err)
		}
		q = nil
	}
	return newMachine(inst, q), nil
}

// Guest logs in over SSH.
func (h *Host) Guest(login Login) Guest { return &sshGuest{login: login} }

// Job runs the plan with jobrun.
func (h *Host) Job(spec JobSpec) Job {
	return &jobrun.Runner{Log: spec.Log, SSH: spec.SSH, Events: spec.Events, Out: spec.Out,
		MaxEvents: spec.MaxEvents, Deadline: spec.Deadline}
}

// qemuMachine is a QEMU instance and its QMP connection.
type qemuMachine struct {
	inst       *qemu.Instance
	qmp        *qemu.QMP // nil for an adopted VM whose socket was unreachable
	poweredOff atomic.Bool
}

func newMachine(inst *qemu.Instance, q *qemu.QMP) *qemuMachine {
	m := &qemuMachine{inst: inst, qmp: q}
	if q != nil {
		go m.watchEvents()
	}
	return m
}

// watchEvents notes a guest-initiated power-off, which is how an adopted
// QEMU (whose exit code cannot be read) tells a clean end from a crash.
func (m *qemuMachine) watchEvents() {
	for ev := range m.qmp.Events() {
		if ev.Name != "SHUTDOWN" {
			continue
		}
		var data struct {
			Guest bool `json:"guest"`
		}
		if json.Unmarshal(ev.Data, &data) == nil && data.Guest {
			m.poweredOff.Store(true)
		}
	}
}

func (m *qemuMachine) Process() qemu.Process   { return m.inst.Process }
func (m *qemuMachine) Exited() <-chan struct{} { return m.inst.Exited() }
func (m *qemuMachine) Kill()                   { m.inst.Kill() }

func (m *qemuMachine) ExitCode() int {
	code := m.inst.ExitCode()
	if code != 0 && m.poweredOff.Load() {
		return 0
	}
	return code
}

// qmpCommandTimeout bounds one QMP command; QEMU answers at once or not at all.
const qmpCommandTimeout = 5 * time.Second

func (m *qemuMachine) PowerDown(ctx context.Context) error {
	if m.qmp == nil {
		return ErrNoControl
	}
	ctx, cancel := context.WithTimeout(ctx, qmpCommandTimeout)
	defer cancel()
	return m.qmp.Powerdown(ctx)
}

// AddForward forwards host:port to the guest's sshd (Forwarder).
func (m *qemuMachine) AddForward(ctx context.Context, host string, port int) error {
	if m.qmp == nil {
		return ErrNoControl
	}
	ctx, cancel := context.WithTimeout(ctx, qmpCommandTimeout)
	defer cancel()
	return m.qmp.AddHostForward(ctx, host, port)
}

// RemoveForward undoes AddForward (Forwarder).
func (m *qemuMachine) RemoveForward(ctx context.Context, host string, port int) error {
	if m.qmp == nil {
		return ErrNoControl
	}
	ctx, cancel := context.WithTimeout(ctx, qmpCommandTimeout)
	defer cancel()
	return m.qmp.RemoveHostForward(ctx, host, port)
}

func (m *qemuMachine) Close() {
	if m.qmp != nil {
		m.qmp.Close()
	}
}

// sshGuest keeps one SSH connection to a guest and logs in again when it
// drops (a plugin restart, a network hiccup).
type sshGuest struct {
	login Login

	mu sync.Mutex
	c  *guestssh.Client
}

// bootPollInterval is how often a booting guest is asked for a login.
const bootPollInterval = 100 * time.Millisecond

func (g *sshGuest) WaitReady(ctx context.Context) error {
	t, err := g.target()
	if err != nil {
		return err
	}
	c, err := guestssh.WaitReady(ctx, t, bootPollInterval)
	if err != nil {
		return err
	}
	g.adopt(c)
	return nil
}

// adopt makes c the guest's connection, closing the one it replaces.
func (g *sshGuest) adopt(c *guestssh.Client) {
	g.mu.Lock()
	old := g.c
	g.c = c
	g.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// SSH holds the lock while it dials, so concurrent callers share one login.
func (g *sshGuest) SSH(ctx context.Context) (*guestssh.Client, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c != nil {
		if _, _, err := g.c.SendRequest("keepalive@solstice", true, nil); err == nil {
			return g.c, nil
		}
		g.c.Close()
		g.c = nil
	}
	t, err := g.targetLocked()
	if err != nil {
		return nil, err
	}
	c, err := guestssh.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	g.c = c
	return c, nil
}

func (g *sshGuest) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c == nil {
		return nil
	}
	err := g.c.Close()
	g.c = nil
	return err
}

func (g *sshGuest) target() (guestssh.Target, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.targetLocked()
}

func (g *sshGuest) targetLocked() (guestssh.Target, error) {
	t, err := g.login()
	if err != nil {
		return guestssh.Target{}, fmt.Errorf("log into the guest: %w", err)
	}
	return t, nil
}
