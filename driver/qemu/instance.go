package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	files, err := spec.open()
	if err != nil {
		return nil, nil, err
	}
	inst, err := launch(spec, out, files)
	CloseFiles(files) // QEMU holds its own copies
	if err == nil {
		var q *QMP
		if q, err = inst.dialQMP(ctx, spec.QMP); err == nil {
			if err = startIncoming(ctx, spec, q); err == nil {
				return inst, q, nil
			}
			q.Close()
		}
		inst.Kill()
		err = fmt.Errorf("%w%s", err, logTail(out.Log))
	}
	os.Remove(spec.QMP) // open bound it; no QEMU listens on it now
	return nil, nil, err
}

// launch starts QEMU with its descriptors and records its pid.
func launch(spec Spec, out Output, files []*os.File) (*Instance, error) {
	logf, err := os.OpenFile(out.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open qemu log: %w", err)
	}
	defer logf.Close()
	cmd := command(spec, files)
	cmd.Stdout = out.Console
	cmd.Stderr = logf
	if err := startIn(cmd, spec.Netns); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Binary, err)
	}
	inst := &Instance{Process: Process{PID: cmd.Process.Pid}, exited: make(chan struct{}), code: -1}
	if p, err := Identify(cmd.Process.Pid); err == nil {
		inst.Process = p
	}
	go inst.reap(cmd)
	if err := writePIDFile(spec.PIDFile, cmd.Process.Pid); err != nil {
		inst.Kill()
		return nil, err
	}
	return inst, nil
}

// open makes QEMU's inherited descriptors, in Args' order: the QMP
// listener, then the guest's files.
func (s Spec) open() ([]*os.File, error) {
	qmp, err := listenQMP(s.QMP)
	if err != nil {
		return nil, err
	}
	files, err := OpenPassed(s.passed())
	if err != nil {
		qmp.Close()
		return nil, err
	}
	extra, err := s.openExtra()
	if err != nil {
		qmp.Close()
		CloseFiles(files)
		return nil, err
	}
	files = append(append([]*os.File{qmp}, files...), extra...)
	if s.AgentPort != nil {
		// A copy: QEMU's descriptors are closed once it has started, and
		// the caller closes its own.
		port, err := dupFile(s.AgentPort)
		if err != nil {
			CloseFiles(files)
			return nil, err
		}
		files = append(files, port)
	}
	return files, nil
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate %s for qemu: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// listenQMP binds the QMP socket in this process and returns the listening
// descriptor, which QEMU inherits (-chardev socket,fd=3). QEMU so needs no
// write access to any directory, the socket file belongs to the driver (mode
// 0600: only root can connect, as RecoverTask does after a restart), and it
// keeps answering for as long as QEMU holds the descriptor.
func listenQMP(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale qmp socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on qmp socket: %w", err)
	}
	// Closing this process's copy must not unlink what QEMU listens on.
	l.SetUnlinkOnClose(false)
	defer l.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("restrict qmp socket: %w", err)
	}
	f, err := l.File()
	if err != nil {
		return nil, fmt.Errorf("qmp socket descriptor: %w", err)
	}
	return f, nil
}

// command builds the exec.Cmd: QEMU as its user, in its own session, with
// the descriptors of open. A host port below 1024 (a task may map one)
// needs CAP_NET_BIND_SERVICE, which QEMU then gets as its only capability.
func command(spec Spec, files []*os.File) *exec.Cmd {
	cmd := exec.Command(spec.Binary, spec.Args()...)
	cmd.ExtraFiles = files
	cmd.SysProcAttr = spec.User.SysProcAttr()
	if spec.Ephemeral {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if spec.User != nil && spec.SSHPort < 1024 {
		cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_NET_BIND_SERVICE}
	}
	return cmd
}

// writePIDFile records QEMU's pid for operators and tests. QEMU's own
// -pidfile is not used: it would need write access to the task's VM dir.
func writePIDFile(path string, pid int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write qemu pidfile: %w", err)
	}
	return nil
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
	// The socket exists before QEMU does, so a QEMU that dies at start-up
	// shows as a closed connection a moment before its exit is reaped.
	select {
	case <-i.exited:
		return nil, fmt.Errorf("qemu exited with code %d during start-up", i.code)
	case <-time.After(exitGrace):
		return nil, err
	}
}

// exitGrace is how long a failed QMP handshake waits for QEMU's exit.
const exitGrace = 2 * time.Second

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
