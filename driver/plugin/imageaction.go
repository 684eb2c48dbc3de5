package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/task"
)

// A task's action (config { action = … }). "pull" and "verify" are how
// solstice image pull and verify reach a client's image cache: Nomad
// places one such task per chosen client, the driver fetches or re-checks
// the image and the task exits without booting anything. The outcome is a
// task event (the Msg… constants below) or, on failure, the start error.
const (
	actionRun    = "run"
	actionPull   = "pull"
	actionVerify = "verify"
)

// Task event messages of the image actions; the CLI reads them (it does
// not import the driver: keep shim/cmd/solstice's copies in step).
const (
	MsgImageCached    = "Image cached"
	MsgImageVerified  = "Image verified"
	MsgImageNotCached = "Image not cached"
)

// checkAction validates the action field; "" is a config built in code.
func checkAction(action string) error {
	switch action {
	case "", actionRun, actionPull, actionVerify:
		return nil
	}
	return fmt.Errorf("action = %q: must be %q (boot a VM, the default), %q or %q (only fetch or re-check the image in this client's cache)",
		action, actionRun, actionPull, actionVerify)
}

// imageOnly reports whether the task only works on the image cache.
func (tc *TaskConfig) imageOnly() bool {
	return tc.Action == actionPull || tc.Action == actionVerify
}

// startImageAction runs a pull or verify task to its end inside StartTask
// (as the start path's own fetch does) and hands Nomad a task that has
// already exited successfully; a failure is the start's error, which
// Nomad shows as the task's driver failure.
func (l *launch) startImageAction() (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	ctx, cancel := context.WithTimeout(l.d.ctx, imageFetchTimeout)
	defer cancel()
	var err error
	if l.tc.Action == actionPull {
		err = l.pullImage(ctx)
	} else {
		err = l.verifyImage(ctx)
	}
	if err != nil {
		l.log.Error("image "+l.tc.Action+" failed", "image", l.label, "error", err)
		return nil, nil, fmt.Errorf("task %q: image %s %s: %w", l.cfg.Name, l.tc.Action, l.label, err)
	}
	st := task.State{TaskConfig: l.cfg, Image: l.label, StartedAt: time.Now()}
	h := task.NewHandle(l.d.log, st, exitedMachine{}, noGuest{})
	th := drivers.NewTaskHandle(task.StateVersion)
	th.Config = l.cfg
	if err := th.SetDriverState(&st); err != nil {
		return nil, nil, fmt.Errorf("save task state: %w", err)
	}
	if !l.d.tasks.Add(l.cfg.ID, h) {
		return nil, nil, fmt.Errorf("task %s is already running", l.cfg.ID)
	}
	go h.Run()
	return th, nil, nil
}

// pullImage makes sure the image is in the cache: the start path's fetch,
// with its progress events and checksum check.
func (l *launch) pullImage(ctx context.Context) error {
	base, err := l.fetchImage(ctx)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("image %s is cached at %s", l.label, base)
	if cached := l.d.cache().ImagePath(imageSource(l.label, l.img)); cached != "" && cached != base {
		detail = fmt.Sprintf("image %s is cached at %s; tasks boot from its uncompressed copy %s", l.label, cached, base)
	}
	l.d.emit(l.cfg, MsgImageCached, detail)
	return nil
}

// verifyImage re-checks the cached image; a corrupt one is removed (and
// the node's attributes updated) so the next task fetches it again.
func (l *launch) verifyImage(ctx context.Context) error {
	k, err := l.d.cache().Check(ctx, imageSource(l.label, l.img))
	if k.Removed {
		l.d.refingerprint()
	}
	switch {
	case err != nil:
		return err
	case !k.Cached:
		l.d.emit(l.cfg, MsgImageNotCached, fmt.Sprintf("image %s is not in this client's cache (%s); the next task fetches it", l.label, k.Path))
		return nil
	case k.Removed && k.Problem != "":
		return fmt.Errorf("the cached %s is corrupt (%s); removed it, the next task fetches the image again", k.Path, k.Problem)
	case k.Removed:
		return fmt.Errorf("the cached %s has sha256 %s, the catalog wants %s; removed it, the next task fetches the image again", k.Path, k.Got, k.Want)
	}
	detail := fmt.Sprintf("image %s at %s matches sha256 %s", l.label, k.Path, k.Want)
	if k.Want == "" {
		detail = fmt.Sprintf("image %s at %s passes the image check (its source is compressed: the catalog's sha256 is checked at download)", l.label, k.Path)
	}
	switch {
	case k.BootProblem != "":
		detail += fmt.Sprintf("; its boot copy %s failed the image check (%s) and was removed: the next task makes it again", k.BootCopy, k.BootProblem)
	case k.BootCopy != "":
		detail += fmt.Sprintf("; its boot copy %s passes the image check", k.BootCopy)
	}
	l.d.emit(l.cfg, MsgImageVerified, detail)
	return nil
}

// exitedMachine stands for the VM an image action never boots: it has
// exited, successfully, so the task handle's ordinary path ends the task.
type exitedMachine struct{}

var exitedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (exitedMachine) Process() qemu.Process               { return qemu.Process{} }
func (exitedMachine) Exited() <-chan struct{}             { return exitedChan }
func (exitedMachine) ExitCode() int                       { return 0 }
func (exitedMachine) PowerDown(ctx context.Context) error { return nil }
func (exitedMachine) Kill()                               {}
func (exitedMachine) Close()                              {}

// noGuest is the guest of an exitedMachine: there is none to log into.
type noGuest struct{}

func (noGuest) WaitReady(ctx context.Context) error { return errNoGuest }
func (noGuest) SSH(ctx context.Context) (*guestssh.Client, error) {
	return nil, errNoGuest
}
func (noGuest) PowerOff(ctx context.Context, command string) error { return nil }
func (noGuest) Close() error                                       { return nil }

var errNoGuest = fmt.Errorf("an image %s or %s task has no guest", actionPull, actionVerify)
