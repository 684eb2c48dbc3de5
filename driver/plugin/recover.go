package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/task"
)

// RecoverTask adopts the QEMU of a task started by an earlier plugin process.
// The process must be the very one recorded (pid and start time), so a
// reused pid is never adopted; QMP is reconnected so the task can still be
// powered off cleanly.
func (d *Driver) RecoverTask(th *drivers.TaskHandle) error {
	if th == nil {
		return fmt.Errorf("recover: no task handle")
	}
	if _, ok := d.tasks.Get(th.Config.ID); ok {
		return nil // already known: Nomad may call this more than once
	}
	var st task.State
	if err := th.GetDriverState(&st); err != nil {
		return fmt.Errorf("recover task %s: decode state: %w", th.Config.Name, err)
	}
	st.TaskConfig = th.Config
	inst, err := qemu.Attach(st.Process)
	if err != nil {
		return fmt.Errorf("recover task %s: %w", th.Config.Name, err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	q, err := qemu.DialQMP(ctx, st.QMPSocket)
	if err != nil {
		// The VM still runs; without QMP it can only be killed, not powered
		// off, so say so rather than failing the task.
		d.log.Warn("recovered task without qmp: stop will kill the vm", "task", th.Config.Name, "error", err)
		q = nil
	}
	h := task.NewHandle(d.log, st, inst, q)
	if st.Events != "" {
		r, err := d.jobRunner(h, th.Config)
		if err != nil {
			return fmt.Errorf("recover task %s: %w", th.Config.Name, err)
		}
		h.SetJob(r) // follows on from the end of the events file
	}
	if !d.tasks.Add(th.Config.ID, h) {
		if q != nil {
			q.Close()
		}
		return nil
	}
	go h.Run()
	d.log.Info("recovered task", "task", th.Config.Name, "pid", st.Process.PID)
	return nil
}
