package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/debugssh"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/internal/contract"
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
	if last, ok := jobrun.LastEvent(st.Events); ok && last.Type == contract.TypeDebugSession {
		d.endInterruptedSession(st)
		h.SetJob(endedJob{code: contract.ExitJobFailed})
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

// endInterruptedSession closes the record of a debug session this plugin
// restarted in the middle of: the session's watch died with the old
// process, so the adopted task powers its VM off (its job had failed).
func (d *Driver) endInterruptedSession(st task.State) {
	err := jobrun.Record(st.Events, nil, contract.Event{Type: contract.TypeDebugEnded,
		Message: "Debug session ended: " + debugssh.EndInterrupted + "."})
	if err != nil {
		d.log.Warn("could not record the end of an interrupted debug session", "task", st.TaskConfig.Name, "error", err)
	}
}

// endedJob is a job whose end is already known: an adopted task's whose
// failed job's debug session was cut short by a plugin restart.
type endedJob struct{ code int }

func (j endedJob) Launch(context.Context, jobrun.Files) (jobrun.Shipped, error) {
	return "", errors.New("the job has ended")
}

func (j endedJob) Follow(context.Context, <-chan struct{}) (int, error) { return j.code, nil }

func (j endedJob) Cancel(context.Context) error { return nil }
