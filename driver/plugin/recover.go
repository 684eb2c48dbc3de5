package plugin

import (
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/task"
)

// RecoverTask adopts the QEMU of a task started by an earlier plugin process.
// The process must be the very one recorded (pid and start time), so a
// reused pid is never adopted; QMP is reconnected so the task can still be
// powered off cleanly.
func (d *Driver) RecoverTask(th *drivers.TaskHandle) error {
	if th == nil || th.Config == nil {
		return errors.New("recover: no task handle")
	}
	if _, ok := d.tasks.Get(th.Config.ID); ok {
		return nil // already known: Nomad may call this more than once
	}
	var st task.State
	if err := th.GetDriverState(&st); err != nil {
		return fmt.Errorf("recover task %s: decode state: %w", th.Config.Name, err)
	}
	st.TaskConfig = th.Config
	h, err := d.adopt(st)
	if err != nil {
		return fmt.Errorf("recover task %s: %w", th.Config.Name, err)
	}
	if !d.tasks.Add(th.Config.ID, h) {
		h.Release() // a concurrent RecoverTask won
		return nil
	}
	if st.Netns != "" {
		// Reinstalled, so a changed egress_allow applies to the running
		// guest too; a failure shows in the next fingerprint.
		if err := d.egress.enterNetns(d.ctx, th.Config, st.Netns); err != nil {
			d.log.Error("recovered task has no egress policy", "task", th.Config.Name, "error", err)
		}
	}
	go h.Run()
	d.log.Info("recovered task", "task", th.Config.Name, "pid", st.Process.PID)
	return nil
}

// adopt reattaches to the task's VM and, when it runs a job, follows the
// job on from the end of its events file.
func (d *Driver) adopt(st task.State) (*task.Handle, error) {
	vms := d.provider()
	m, err := vms.Attach(d.ctx, st.Process, st.QMPSocket)
	if err != nil {
		return nil, err
	}
	h := task.NewHandle(d.log, st, m, vms.Guest(st.Login))
	if st.Events == "" {
		return h, nil
	}
	job, err := d.newJob(vms, h, st.TaskConfig)
	if err != nil {
		h.Release()
		return nil, err
	}
	h.SetJob(job)
	return h, nil
}
