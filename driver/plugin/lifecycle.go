package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	cstructs "github.com/hashicorp/nomad/client/structs"

	"github.com/solstice-ci/solstice/driver/task"
)

func (d *Driver) handle(id string) (*task.Handle, error) {
	h, ok := d.tasks.Get(id)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h, nil
}

// WaitTask delivers the task's exit result once the VM is gone.
func (d *Driver) WaitTask(ctx context.Context, id string) (<-chan *drivers.ExitResult, error) {
	h, err := d.handle(id)
	if err != nil {
		return nil, err
	}
	ch := make(chan *drivers.ExitResult, 1)
	go func() {
		defer close(ch)
		select {
		case <-h.Done():
			ch <- h.Result()
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
	}()
	return ch, nil
}

// StopTask powers the guest off through ACPI and waits up to the job's
// kill_timeout before killing QEMU. The signal is ignored: a VM is stopped
// by its power button, not by a Unix signal.
func (d *Driver) StopTask(id string, timeout time.Duration, _ string) error {
	h, err := d.handle(id)
	if err != nil {
		return err
	}
	d.log.Info("stopping task", "task", h.State().TaskConfig.Name, "kill_timeout", timeout.String())
	h.Stop(d.ctx, timeout)
	<-h.Done()
	return nil
}

// DestroyTask removes everything the task made except the base image.
func (d *Driver) DestroyTask(id string, force bool) error {
	h, err := d.handle(id)
	if err != nil {
		return err
	}
	select {
	case <-h.Done():
	default:
		if !force {
			return errors.New("cannot destroy a running task without force")
		}
		h.Kill()
		<-h.Done()
	}
	removeTaskFiles(h.State())
	d.egress.forget(id)
	d.tasks.Delete(id)
	return nil
}

func removeTaskFiles(st task.State) {
	for _, p := range []string{st.QMPSocket, st.KeyPath} {
		if p != "" {
			os.Remove(p)
		}
	}
	if st.VMDir != "" {
		os.RemoveAll(st.VMDir)
	}
}

// InspectTask reports the task's status.
func (d *Driver) InspectTask(id string) (*drivers.TaskStatus, error) {
	h, err := d.handle(id)
	if err != nil {
		return nil, err
	}
	return h.TaskStatus(), nil
}

// TaskStats reports QEMU's CPU and memory use every interval.
func (d *Driver) TaskStats(ctx context.Context, id string, interval time.Duration) (<-chan *cstructs.TaskResourceUsage, error) {
	h, err := d.handle(id)
	if err != nil {
		return nil, err
	}
	ch := make(chan *cstructs.TaskResourceUsage)
	go d.statsLoop(ctx, h, interval, ch)
	return ch, nil
}

func (d *Driver) statsLoop(ctx context.Context, h *task.Handle, interval time.Duration, ch chan<- *cstructs.TaskResourceUsage) {
	defer close(ch)
	var cpu cpuMeter
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.Done():
			return
		case <-timer.C:
			timer.Reset(interval)
		}
		usage, err := sample(h, &cpu)
		if err != nil {
			continue
		}
		select {
		case ch <- usage:
		case <-ctx.Done():
			return
		}
	}
}

// cpuMeter turns cumulative CPU time into a percentage between samples.
type cpuMeter struct {
	prevCPU  time.Duration
	prevWall time.Time
}

func (m *cpuMeter) percent(cpu time.Duration, now time.Time) float64 {
	defer func() { m.prevCPU, m.prevWall = cpu, now }()
	if m.prevWall.IsZero() || !now.After(m.prevWall) {
		return 0
	}
	return float64(cpu-m.prevCPU) / float64(now.Sub(m.prevWall)) * 100
}

// USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const ticksPerSecond = 100

func sample(h *task.Handle, cpu *cpuMeter) (*cstructs.TaskResourceUsage, error) {
	p := h.Process()
	user, system, err := p.CPUTicks()
	if err != nil {
		return nil, err
	}
	rss, err := p.RSS()
	if err != nil {
		return nil, err
	}
	toDur := func(ticks uint64) time.Duration { return time.Duration(ticks) * time.Second / ticksPerSecond }
	now := time.Now()
	return &cstructs.TaskResourceUsage{
		ResourceUsage: &cstructs.ResourceUsage{
			MemoryStats: &cstructs.MemoryStats{RSS: rss, Measured: []string{"RSS"}},
			CpuStats: &cstructs.CpuStats{
				UserMode:   float64(toDur(user).Milliseconds()),
				SystemMode: float64(toDur(system).Milliseconds()),
				Percent:    cpu.percent(toDur(user+system), now),
				Measured:   []string{"User Mode", "System Mode", "Percent"},
			},
		},
		Timestamp: now.UnixNano(),
	}, nil
}

// TaskEvents streams the driver's task events (image fetch, boot, …).
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

func (d *Driver) emit(cfg *drivers.TaskConfig, msg, detail string) {
	d.emitAnnotated(cfg, msg, map[string]string{"detail": detail})
}

func (d *Driver) emitAnnotated(cfg *drivers.TaskConfig, msg string, annotations map[string]string) {
	d.eventer.EmitEvent(&drivers.TaskEvent{
		TaskID:      cfg.ID,
		TaskName:    cfg.Name,
		AllocID:     cfg.AllocID,
		Timestamp:   time.Now(),
		Message:     msg,
		Annotations: annotations,
	})
}

// SignalTask is not supported: a guest's processes are not the driver's.
func (d *Driver) SignalTask(id string, signal string) error {
	return fmt.Errorf("solstice-vm cannot send %s to a VM; stop the task to power it off", signal)
}
