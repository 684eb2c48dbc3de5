package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Handle is one running VM as this plugin process sees it.
type Handle struct {
	log  hclog.Logger
	inst *qemu.Instance
	job  *jobrun.Runner // nil for a plain long-running VM
	// jobDone is closed when the job's final event has arrived.
	jobDone chan struct{}
	jobCode int
	jobErr  error

	mu          sync.RWMutex
	state       State
	qmp         *qemu.QMP
	ssh         *guestssh.Client
	status      drivers.TaskState
	result      *drivers.ExitResult
	completedAt time.Time
	stopping    bool // Nomad asked the task to stop
	poweredOff  bool // the guest itself asked to power off
	done        chan struct{}
}

// NewHandle wraps a started or adopted QEMU.
func NewHandle(log hclog.Logger, st State, inst *qemu.Instance, q *qemu.QMP) *Handle {
	h := &Handle{
		log:    log.With("task", st.TaskConfig.Name, "alloc", st.TaskConfig.AllocID),
		inst:   inst,
		state:  st,
		qmp:    q,
		status: drivers.TaskStateRunning,
		done:   make(chan struct{}),
	}
	if q != nil {
		go h.watchEvents(q)
	}
	return h
}

// State returns a copy of the persisted state.
func (h *Handle) State() State {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.state
}

// Process is the QEMU process behind the task.
func (h *Handle) Process() qemu.Process { return h.inst.Process }

// Done is closed once the task has exited and Result is set.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Result is the task's exit, valid once Done is closed.
func (h *Handle) Result() *drivers.ExitResult {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.result
}

// SetJob makes the task run a job plan: its result becomes the task's.
func (h *Handle) SetJob(r *jobrun.Runner) {
	h.job = r
	h.jobDone = make(chan struct{})
}

// Run follows the job (if any) and waits for QEMU to exit, then turns how it
// went into the task's result. It returns when the task is over.
func (h *Handle) Run() {
	if h.job != nil {
		go h.followJob()
	}
	<-h.inst.Exited()
	code := h.inst.ExitCode()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.job != nil {
		h.result = h.jobResult()
	} else {
		h.result = h.exitResult(code)
	}
	h.status = drivers.TaskStateExited
	h.completedAt = time.Now()
	if h.ssh != nil {
		h.ssh.Close()
	}
	if h.qmp != nil {
		h.qmp.Close()
	}
	h.log.Info("vm exited", "qemu_exit", code, "task_exit", h.result.ExitCode, "stopped", h.stopping)
	close(h.done)
}

// followJob follows the job's events to its end, then powers the VM off:
// a finished job has no more use for its guest.
func (h *Handle) followJob() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.inst.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	code, err := h.job.Follow(ctx, h.inst.Exited())
	h.mu.Lock()
	h.jobCode, h.jobErr = code, err
	q := h.qmp
	h.mu.Unlock()
	close(h.jobDone)
	if err != nil {
		h.log.Error("lost the job's event stream", "error", err)
	}
	h.log.Info("job finished", "exit_code", code)
	h.inst.Shutdown(context.Background(), q, jobPowerOffTimeout)
}

// jobPowerOffTimeout bounds the power-off after a job has finished.
const jobPowerOffTimeout = 60 * time.Second

// jobResult is the task's result for a job; h.mu is held.
func (h *Handle) jobResult() *drivers.ExitResult {
	select {
	case <-h.jobDone:
	default:
		if h.stopping {
			return &drivers.ExitResult{ExitCode: contract.ExitCancelled}
		}
		return &drivers.ExitResult{ExitCode: contract.ExitInfrastructure,
			Err: fmt.Errorf("the VM stopped before the job finished (see qemu.log in %s)", h.state.VMDir)}
	}
	res := &drivers.ExitResult{ExitCode: h.jobCode}
	if h.jobErr != nil {
		res.ExitCode, res.Err = contract.ExitInfrastructure, h.jobErr
	}
	return res
}

func (h *Handle) exitResult(qemuCode int) *drivers.ExitResult {
	switch {
	case h.stopping:
		return &drivers.ExitResult{ExitCode: contract.ExitCancelled}
	case qemuCode == 0 || h.poweredOff:
		return &drivers.ExitResult{ExitCode: contract.ExitSuccess}
	default:
		return &drivers.ExitResult{
			ExitCode: contract.ExitInfrastructure,
			Err:      fmt.Errorf("qemu exited unexpectedly with code %d (see qemu.log in %s)", qemuCode, h.state.VMDir),
		}
	}
}

// watchEvents notes a guest-initiated power-off, which is how an adopted
// QEMU (whose exit code we cannot read) tells a clean end from a crash.
func (h *Handle) watchEvents(q *qemu.QMP) {
	for ev := range q.Events() {
		if ev.Name != "SHUTDOWN" {
			continue
		}
		var data struct {
			Guest bool `json:"guest"`
		}
		if json.Unmarshal(ev.Data, &data) == nil && data.Guest {
			h.mu.Lock()
			h.poweredOff = true
			h.mu.Unlock()
		}
	}
}

// Stop ends the task within timeout (the job's kill_timeout): a running job
// is cancelled first, so its cleanup steps run and its events say
// "cancelled"; then the ACPI power button is pressed, and QEMU is killed if
// the guest has not powered off in the time left.
func (h *Handle) Stop(ctx context.Context, timeout time.Duration) {
	h.mu.Lock()
	h.stopping = true
	q := h.qmp
	h.mu.Unlock()
	start := time.Now()
	if h.job != nil {
		h.cancelJob(ctx, timeout/2)
	}
	clean := h.inst.Shutdown(ctx, q, timeout-time.Since(start))
	h.log.Info("vm stopped", "clean", clean, "took", time.Since(start).Round(time.Millisecond).String())
}

// cancelJob asks the guest agent to cancel and waits up to grace for the
// job's final event.
func (h *Handle) cancelJob(ctx context.Context, grace time.Duration) {
	select {
	case <-h.jobDone:
		return
	default:
	}
	cctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := h.job.Cancel(cctx); err != nil {
		h.log.Warn("could not cancel the job in the guest", "error", err)
		return
	}
	select {
	case <-h.jobDone:
	case <-cctx.Done():
		h.log.Warn("the job did not finish cancelling in time", "grace", grace)
	}
}

// Kill ends QEMU at once.
func (h *Handle) Kill() {
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
	h.inst.Kill()
}

// SSH returns a logged-in client, dialling (again) when needed. The host key
// seen at boot is pinned, so this always reaches the same guest.
func (h *Handle) SSH(ctx context.Context) (*guestssh.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ssh != nil {
		if _, _, err := h.ssh.SendRequest("keepalive@solstice", true, nil); err == nil {
			return h.ssh, nil
		}
		h.ssh.Close()
		h.ssh = nil
	}
	key, err := os.ReadFile(h.state.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("read task ssh key: %w", err)
	}
	c, err := guestssh.Dial(ctx, h.state.SSHTarget(key))
	if err != nil {
		return nil, err
	}
	h.ssh = c
	return c, nil
}

// SetSSH hands over the connection made while waiting for boot.
func (h *Handle) SetSSH(c *guestssh.Client) {
	h.mu.Lock()
	h.ssh = c
	h.mu.Unlock()
}

// TaskStatus is what InspectTask reports.
func (h *Handle) TaskStatus() *drivers.TaskStatus {
	h.mu.RLock()
	defer h.mu.RUnlock()
	st := &drivers.TaskStatus{
		ID:          h.state.TaskConfig.ID,
		Name:        h.state.TaskConfig.Name,
		State:       h.status,
		StartedAt:   h.state.StartedAt,
		CompletedAt: h.completedAt,
		DriverAttributes: map[string]string{
			"pid":       fmt.Sprint(h.inst.Process.PID),
			"image":     h.state.Image,
			"ssh":       fmt.Sprintf("%s:%d", h.state.SSHHost, h.state.SSHPort),
			"boot_time": h.state.BootTime.Round(time.Millisecond).String(),
		},
	}
	if h.result != nil {
		st.ExitResult = h.result.Copy()
	}
	return st
}

// UpdateState changes the persisted state in place.
func (h *Handle) UpdateState(f func(*State)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.state)
}
