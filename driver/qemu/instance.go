package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Instance is a running QEMU, either started by this process or adopted
// after a plugin restart.
type Instance struct {
	Process Process
	exited  chan struct{}
	code    int // valid once exited is closed; -1 when unknown
}

// Output is where QEMU's console and its own diagnostics go.
type Output struct {
	Console *os.File // serial console (QEMU's stdout)
	Log     string   // QEMU's stderr, kept in a file so errors can be quoted
}

// Start launches QEMU in its own session, so that neither a plugin crash nor
// a Nomad client restart takes the guest down with it, and waits until QMP
// answers. If QEMU dies first, the error quotes what it said.
func Start(ctx context.Context, spec Spec, out Output) (*Instance, *QMP, error) {
	if err := spec.Validate(); err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(out.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open qemu log: %w", err)
	}
	defer logf.Close()
	cmd := command(spec)
	cmd.Stdout = out.Console
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", spec.Binary, err)
	}
	inst := &Instance{Process: Process{PID: cmd.Process.Pid}, exited: make(chan struct{}), code: -1}
	if p, err := Identify(cmd.Process.Pid); err == nil {
		inst.Process = p
	}
	go inst.reap(cmd)

	q, err := inst.dialQMP(ctx, spec.QMP)
	if err != nil {
		inst.Kill()
		return nil, nil, fmt.Errorf("%w%s", err, logTail(out.Log))
	}
	return inst, q, nil
}

// command builds the exec.Cmd: QEMU in its own session, under the isolation
// group, entered into the network namespace when there is one (nsenter
// execs QEMU, so the pid is QEMU's).
func command(spec Spec) *exec.Cmd {
	argv := append([]string{spec.Binary}, spec.Args()...)
	if spec.Netns != "" {
		argv = append([]string{"nsenter", "--net=" + spec.Netns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.Ephemeral {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if spec.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid: uint32(os.Getuid()), Gid: uint32(spec.GID), // no supplementary groups
		}
	}
	return cmd
}

func (i *Instance) reap(cmd *exec.Cmd) {
	err := cmd.Wait()
	i.code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		i.code = ee.ExitCode()
	}
	close(i.exited)
}

// dialQMP connects to QMP unless QEMU exits first.
func (i *Instance) dialQMP(ctx context.Context, socket string) (*QMP, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-i.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	q, err := DialQMP(ctx, socket)
	if err == nil {
		return q, nil
	}
	select {
	case <-i.exited:
		return nil, fmt.Errorf("qemu exited with code %d during start-up", i.code)
	default:
		return nil, err
	}
}

// Attach adopts a QEMU started by an earlier plugin process. Its exit code
// cannot be learned (it is not our child), so ExitCode reports -1.
func Attach(p Process) (*Instance, error) {
	if !p.Alive() {
		return nil, fmt.Errorf("attach to qemu pid %d: %w", p.PID, ErrGone)
	}
	inst := &Instance{Process: p, exited: make(chan struct{}), code: -1}
	go func() {
		for p.Alive() {
			time.Sleep(250 * time.Millisecond)
		}
		close(inst.exited)
	}()
	return inst, nil
}

// Exited is closed when QEMU has exited.
func (i *Instance) Exited() <-chan struct{} { return i.exited }

// ExitCode is QEMU's exit status once Exited is closed: 0 when the guest
// powered itself off, non-zero or -1 otherwise.
func (i *Instance) ExitCode() int {
	<-i.exited
	return i.code
}

// Kill ends QEMU at once and waits for it to go.
func (i *Instance) Kill() {
	if err := i.Process.Signal(syscall.SIGKILL); err != nil {
		return
	}
	<-i.exited
}

// logTail returns the last lines of QEMU's log, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return ": " + s
}
