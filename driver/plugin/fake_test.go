package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/image"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// fakeVMs is a vm.Provider that runs no QEMU. A test sets the behaviour
// fields before the first call, then reads back what the driver did with
// calls(); machines, guests and jobs log their calls there too, in order.
type fakeVMs struct {
	imageErr, diskErr, startErr, attachErr, launchErr error
	// onImage is called as the image is fetched.
	onImage func()
	// boot is how a guest answers WaitReady; nil means it logs in at once.
	boot func(ctx context.Context, m *fakeMachine) error
	// powerDown is how a guest answers the power button; nil means it
	// powers off at once.
	powerDown func(m *fakeMachine) error
	// powerOff is how a guest answers its OS's power-off command over
	// SSH; nil means it cannot be reached (as before SSH power-off), so
	// the driver falls back to ACPI.
	powerOff func(m *fakeMachine, command string) error
	// cancel is how a job answers Cancel; nil means it finishes cancelled.
	cancel func(j *fakeJob) error

	mu       sync.Mutex
	log      []string
	machines []*fakeMachine
	jobs     []*fakeJob
	attached []attachCall
	launched []jobrun.Files
	logins   []guestssh.Target
	guests   []*fakeGuest
	specs    []qemu.Spec // what Start was asked to run
}

type attachCall struct {
	Process   qemu.Process
	QMPSocket string
}

var _ vm.Provider = (*fakeVMs)(nil)

func (f *fakeVMs) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

// calls returns the calls made so far.
func (f *fakeVMs) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeVMs) Image(ctx context.Context, src image.Source) (string, error) {
	f.record("image %s", src.Label)
	if f.onImage != nil {
		f.onImage()
	}
	if f.imageErr != nil {
		return "", f.imageErr
	}
	return "/cache/" + src.Label + "." + src.Format, nil
}

func (f *fakeVMs) CreateDisk(ctx context.Context, d vm.Disk) error {
	f.record("create-disk")
	if f.diskErr != nil {
		return f.diskErr
	}
	// 0644 is what qemu-img leaves under the usual umask.
	return os.WriteFile(d.Path, []byte("overlay on "+d.Base), 0o644)
}

// Start leaves a file where QEMU would make its QMP socket, so tests can
// see that whoever cleans up removes it.
func (f *fakeVMs) Start(ctx context.Context, spec qemu.Spec, out qemu.Output) (vm.Machine, error) {
	f.record("start")
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	if err := os.WriteFile(spec.QMP, nil, 0o600); err != nil {
		return nil, err
	}
	return f.newMachine(qemu.Process{}), nil
}

func (f *fakeVMs) Attach(ctx context.Context, p qemu.Process, qmpSocket string) (vm.Machine, error) {
	f.record("attach")
	f.mu.Lock()
	f.attached = append(f.attached, attachCall{p, qmpSocket})
	f.mu.Unlock()
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	return f.newMachine(p), nil
}

func (f *fakeVMs) newMachine(p qemu.Process) *fakeMachine {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.PID == 0 {
		n := len(f.machines) + 1
		p = qemu.Process{PID: 1000 + n, StartTime: uint64(424242 + n)}
	}
	m := &fakeMachine{vms: f, proc: p, exited: make(chan struct{})}
	f.machines = append(f.machines, m)
	return m
}

// machine returns the i-th machine started or adopted.
func (f *fakeVMs) machine(t *testing.T, i int) *fakeMachine {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.machines) {
		t.Fatalf("only %d machines were made", len(f.machines))
	}
	return f.machines[i]
}

// job returns the i-th job made.
func (f *fakeVMs) job(t *testing.T, i int) *fakeJob {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.jobs) {
		t.Fatalf("only %d jobs were made", len(f.jobs))
	}
	return f.jobs[i]
}

// stopAll ends every machine, so no goroutine of the driver outlives a test.
func (f *fakeVMs) stopAll() {
	f.mu.Lock()
	ms := slices.Clone(f.machines)
	f.mu.Unlock()
	for _, m := range ms {
		m.exit(-1)
	}
}

// Guest belongs to the machine made last, which is the one being booted.
func (f *fakeVMs) Guest(login vm.Login) vm.Guest {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &fakeGuest{vms: f, login: login}
	if n := len(f.machines); n > 0 {
		g.machine = f.machines[n-1]
	}
	f.guests = append(f.guests, g)
	return g
}

func (f *fakeVMs) Job(spec vm.JobSpec) vm.Job {
	f.record("job")
	f.mu.Lock()
	defer f.mu.Unlock()
	j := &fakeJob{vms: f, spec: spec, finish: make(chan int, 1)}
	f.jobs = append(f.jobs, j)
	return j
}

// fakeMachine is a VM that only exists as a channel closing.
type fakeMachine struct {
	vms    *fakeVMs
	proc   qemu.Process
	exited chan struct{}
	once   sync.Once
	code   int
}

// exit ends the VM with a QEMU exit code (only the first call counts).
func (m *fakeMachine) exit(code int) {
	m.once.Do(func() {
		m.code = code
		close(m.exited)
	})
}

func (m *fakeMachine) Process() qemu.Process   { return m.proc }
func (m *fakeMachine) Exited() <-chan struct{} { return m.exited }

func (m *fakeMachine) ExitCode() int {
	<-m.exited
	return m.code
}

func (m *fakeMachine) PowerDown(ctx context.Context) error {
	m.vms.record("power-down")
	if m.vms.powerDown != nil {
		return m.vms.powerDown(m)
	}
	m.exit(0)
	return nil
}

// Kill reports -1 like a QEMU ended by a signal.
func (m *fakeMachine) Kill() {
	m.vms.record("kill")
	m.exit(-1)
}

func (m *fakeMachine) Close() { m.vms.record("close") }

type fakeGuest struct {
	vms     *fakeVMs
	machine *fakeMachine
	login   vm.Login
}

// WaitReady logs in the way the driver said to, so tests see the target.
func (g *fakeGuest) WaitReady(ctx context.Context) error {
	g.vms.record("wait-ready")
	t, err := g.login()
	if err != nil {
		return err
	}
	g.vms.mu.Lock()
	g.vms.logins = append(g.vms.logins, t)
	g.vms.mu.Unlock()
	if g.vms.boot != nil {
		return g.vms.boot(ctx, g.machine)
	}
	return nil
}

func (g *fakeGuest) SSH(ctx context.Context) (*guestssh.Client, error) {
	return nil, errors.New("the fake guest has no sshd")
}

func (g *fakeGuest) PowerOff(ctx context.Context, command string) error {
	g.vms.record("poweroff-command %s", command)
	if g.vms.powerOff == nil {
		return errors.New("the fake guest has no sshd")
	}
	return g.vms.powerOff(g.machine, command)
}

func (g *fakeGuest) Close() error {
	g.vms.record("guest-close")
	return nil
}

// fakeJob is a job whose end the test (or Cancel) decides.
type fakeJob struct {
	vms    *fakeVMs
	spec   vm.JobSpec
	finish chan int
}

// end finishes the job with a task exit code.
func (j *fakeJob) end(code int) {
	select {
	case j.finish <- code:
	default:
	}
}

func (j *fakeJob) Launch(ctx context.Context, f jobrun.Files) (jobrun.Shipped, error) {
	j.vms.record("launch")
	j.vms.mu.Lock()
	j.vms.launched = append(j.vms.launched, f)
	j.vms.mu.Unlock()
	return "uploaded over ssh (the fake's way)", j.vms.launchErr
}

func (j *fakeJob) Follow(ctx context.Context, guestGone <-chan struct{}) (int, error) {
	j.vms.record("follow")
	select {
	case code := <-j.finish:
		return code, nil
	case <-guestGone:
		return contract.ExitInfrastructure, errors.New("the VM went away before the job finished")
	case <-ctx.Done():
		return contract.ExitInfrastructure, ctx.Err()
	}
}

func (j *fakeJob) Cancel(ctx context.Context) error {
	j.vms.record("cancel")
	if j.vms.cancel != nil {
		return j.vms.cancel(j)
	}
	j.end(contract.ExitCancelled)
	return nil
}

// waitForCall waits until call has been made: some calls happen in the
// goroutines a task runs.
func (f *fakeVMs) waitForCall(t *testing.T, call string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(f.calls(), call) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q call; calls: %q", call, f.calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AddForward and RemoveForward make the fake a vm.Forwarder.
func (m *fakeMachine) AddForward(ctx context.Context, host string, port int) error {
	m.vms.record("forward-add %s:%d", host, port)
	return nil
}

func (m *fakeMachine) RemoveForward(ctx context.Context, host string, port int) error {
	m.vms.record("forward-remove %s:%d", host, port)
	return nil
}
