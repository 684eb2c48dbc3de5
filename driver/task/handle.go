package task

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Handle is one running VM as this plugin process sees it.
type Handle struct {
	log     hclog.Logger
	machine vm.Machine
	guest   vm.Guest
	job     vm.Job // nil for a plain long-running VM
	// jobDone is closed when the job's final event has arrived.
	jobDone chan struct{}
	jobCode int
	jobErr  error
	// debug runs after a failed job, before the VM powers off (SetDebug).
	debug func(ctx context.Context)
	// stopped is closed when Nomad stops or kills the task.
	stopped  chan struct{}
	stopOnce sync.Once

	mu          sync.RWMutex
	state       State
	status      drivers.TaskState
	result      *drivers.ExitResult
	completedAt time.Time
	stopping    bool // Nomad asked the task to stop
	done        chan struct{}
}

// NewHandle wraps a started or adopted VM and the way into its guest.
func NewHandle(log hclog.Logger, st State, m vm.Machine, g vm.Guest) *Handle {
	return &Handle{
		log:     log.With("task", st.TaskConfig.Name, "alloc", st.TaskConfig.AllocID),
		machine: m,
		guest:   g,
		state:   st,
		status:  drivers.TaskStateRunning,
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// State returns a copy of the persisted state.
func (h *Handle) State() State {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.state
}

// Process is the QEMU process behind the task.
func (h *Handle) Process() qemu.Process { return h.machine.Process() }

// Done is closed once the task has exited and Result is set.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Result is the task's exit, valid once Done is closed.
func (h *Handle) Result() *drivers.ExitResult {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.result
}

// Release drops the connections to the VM and its guest, leaving the VM as
// it is: for a handle that will never run, and for one whose VM is gone.
func (h *Handle) Release() {
	h.guest.Close()
	h.machine.Close()
}

// SetJob makes the task run a job plan: its result becomes the task's.
func (h *Handle) SetJob(j vm.Job) {
	h.job = j
	h.jobDone = make(chan struct{})
}

// SetDebug makes a failed job (not a cancelled one, nor an infrastructure
// failure) keep its VM while run runs: a debug session. run's context ends
// when the task is stopped or the VM exits; the VM powers off when run
// returns. The job's result stays the task's.
func (h *Handle) SetDebug(run func(ctx context.Context)) { h.debug = run }

// Run follows the job (if any) and waits for QEMU to exit, then turns how it
// went into the task's result. It returns when the task is over.
func (h *Handle) Run() {
	if h.job != nil {
		go h.followJob()
	}
	<-h.machine.Exited()
	code := h.machine.ExitCode()
	h.mu.Lock()
	if h.job != nil {
		h.result = h.jobResult()
	} else {
		h.result = h.exitResult(code)
	}
	h.status = drivers.TaskStateExited
	h.completedAt = time.Now()
	taskExit, stopped := h.result.ExitCode, h.stopping
	h.mu.Unlock()
	h.Release()
	h.log.Info("vm exited", "qemu_exit", code, "task_exit", taskExit, "stopped", stopped)
	close(h.done)
}

// followJob follows the job's events to its end, then powers the VM off:
// a finished job has no more use for its guest.
func (h *Handle) followJob() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.machine.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	code, err := h.job.Follow(ctx, h.machine.Exited())
	h.mu.Lock()
	h.jobCode, h.jobErr = code, err
	h.mu.Unlock()
	close(h.jobDone)
	if err != nil {
		h.log.Error("lost the job's event stream", "error", err)
	}
	h.log.Info("job finished", "exit_code", code)
	if err == nil && code == contract.ExitJobFailed && h.debug != nil {
		h.runDebug(ctx)
	}
	vm.Stop(context.Background(), h.machine, h.guest, h.State().PowerOff, jobPowerOffTimeout)
}

// runDebug runs the debug session until it ends or the task is stopped.
func (h *Handle) runDebug(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	h.log.Info("keeping the failed job's VM for a debug session")
	h.debug(ctx)
}

// markStopped says Nomad stopped the task; h.mu is held.
func (h *Handle) markStopped() {
	h.stopping = true
	h.stopOnce.Do(func() { close(h.stopped) })
}

// jobPowerOffTimeout bounds the power-off after a job has finished.
const jobPowerOffTimeout = 60 * time.Second

// jobResult is the task's result for a job; h.mu is held.
func (h *Handle) jobResult() *drivers.ExitResult {
	finished := false
	select {
	case <-h.jobDone:
		finished = h.jobErr == nil
	default:
	}
	switch {
	case finished:
		return &drivers.ExitResult{ExitCode: h.jobCode}
	case h.stopping:
		// The job's stream may have ended a moment before this runs, when
		// the VM went away under it: either way Nomad stopped the task.
		return &drivers.ExitResult{ExitCode: contract.ExitCancelled}
	case h.jobErr != nil:
		return &drivers.ExitResult{ExitCode: contract.ExitInfrastructure, Err: h.jobErr}
	default:
		return &drivers.ExitResult{ExitCode: contract.ExitInfrastructure,
			Err: fmt.Errorf("the VM stopped before the job finished (see qemu.log in %s)", h.state.VMDir)}
	}
}

func (h *Handle) exitResult(qemuCode int) *drivers.ExitResult {
	switch {
	case h.stopping:
		return &drivers.ExitResult{ExitCode: contract.ExitCancelled}
	case qemuCode == 0:
		return &drivers.ExitResult{ExitCode: contract.ExitSuccess}
	default:
		return &drivers.ExitResult{
			ExitCode: contract.ExitInfrastructure,
			Err:      fmt.Errorf("qemu exited unexpectedly with code %d (see qemu.log in %s)", qemuCode, h.state.VMDir),
		}
	}
}

// Stop ends the task within timeout (the job's kill_timeout): a running job
// is cancelled first, so its cleanup steps run and its events say
// "cancelled"; then the guest is asked to power off, by its OS's command
// over SSH and then the ACPI button (vm.Stop), and QEMU is killed if the
// guest has not powered off in the time left.
func (h *Handle) Stop(ctx context.Context, timeout time.Duration) {
	h.mu.Lock()
	h.markStopped()
	h.mu.Unlock()
	start := time.Now()
	if h.job != nil {
		h.cancelJob(ctx, timeout/2)
	}
	clean := vm.Stop(ctx, h.machine, h.guest, h.State().PowerOff, timeout-time.Since(start))
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
	h.markStopped()
	h.mu.Unlock()
	h.machine.Kill()
}

// SSH returns a logged-in client to the guest. The host key seen at boot
// is pinned, so this always reaches the same guest.
func (h *Handle) SSH(ctx context.Context) (*guestssh.Client, error) {
	return h.guest.SSH(ctx)
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
			"pid":       fmt.Sprint(h.machine.Process().PID),
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
