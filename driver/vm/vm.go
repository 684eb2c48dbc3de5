// Package vm is the seam between the driver plugin and what runs a task:
// the image cache and qemu-img on the host, QEMU and its control socket, the
// guest's sshd, and the job runner. The plugin and the task handle use only
// the interfaces here, so the task lifecycle can be tested against a fake;
// Host is the real thing.
package vm

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/image"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
)

// Provider makes the VMs behind tasks and finds them again after a plugin
// restart.
type Provider interface {
	// Image returns the local path of a catalog image's read-only base,
	// fetching it first when this host does not have it yet.
	Image(ctx context.Context, src image.Source) (string, error)
	// CreateDisk makes a task's copy-on-write disk on a base image.
	CreateDisk(ctx context.Context, d Disk) error
	// Start launches QEMU detached from this process and returns once its
	// control socket answers.
	Start(ctx context.Context, spec qemu.Spec, out qemu.Output) (Machine, error)
	// Attach adopts the QEMU of a task started by an earlier plugin
	// process: the very process recorded, never one that reuses its pid.
	Attach(ctx context.Context, p qemu.Process, qmpSocket string) (Machine, error)
	// Guest is the way into a VM's guest over SSH. login is called for
	// every login, so the key stays where the task keeps it.
	Guest(login Login) Guest
	// Job is the runner of a task's job plan in its guest.
	Job(spec JobSpec) Job
}

// Disk is a task's overlay on a base image.
type Disk struct {
	Base       string
	BaseFormat string
	Path       string
	Size       int64 // bytes; the overlay never shrinks below the base
	// OnTemplate: Base is a warm-start template's frozen overlay, which
	// itself has a backing file (see disk.Tool.CreateCloneOverlay).
	OnTemplate bool
}

// Machine is a running QEMU, started by this process or adopted.
type Machine interface {
	// Process names the QEMU process across plugin restarts.
	Process() qemu.Process
	// Exited is closed once QEMU has exited.
	Exited() <-chan struct{}
	// ExitCode waits for QEMU to exit: 0 when the guest powered itself
	// off, non-zero or -1 (unknown) otherwise.
	ExitCode() int
	// PowerDown presses the ACPI power button; the guest decides whether
	// and when to go.
	PowerDown(ctx context.Context) error
	// Kill ends QEMU at once and waits for it to go.
	Kill()
	// Close lets go of the control connection; QEMU keeps running.
	Close()
}

// Forwarder is a Machine that can forward one more host port to its
// guest's sshd while it runs (a debug session's port).
type Forwarder interface {
	AddForward(ctx context.Context, host string, port int) error
	RemoveForward(ctx context.Context, host string, port int) error
}

// Login says how to log into a guest right now.
type Login func() (guestssh.Target, error)

// Guest is the SSH side of a VM.
type Guest interface {
	// WaitReady waits until the guest accepts a login. Every login, the
	// first included, insists on the host key the login gives (the one
	// the driver put in the guest's seed).
	WaitReady(ctx context.Context) error
	// SSH returns a logged-in client, logging in again when the last
	// connection dropped.
	SSH(ctx context.Context) (*guestssh.Client, error)
	// PowerOff runs the guest OS's own power-off command (as root, through
	// sudo when the login user is not). nil means the guest took it; the
	// connection dropping as the guest goes down counts as taken.
	PowerOff(ctx context.Context, command string) error
	// Close drops the connection; the guest is unaffected.
	Close() error
}

// Job is a job plan run by the guest agent.
type Job interface {
	// Launch puts what the job needs into the guest and starts the agent
	// detached; it says how the agent got there.
	Launch(ctx context.Context, f jobrun.Files) (jobrun.Shipped, error)
	// Follow brings the job's events home until it finishes and returns
	// the task exit code its conclusion means.
	Follow(ctx context.Context, guestGone <-chan struct{}) (int, error)
	// Cancel asks the agent to cancel the job.
	Cancel(ctx context.Context) error
}

// JobSpec is where a job's guest is and where its events go.
type JobSpec struct {
	Log    hclog.Logger
	SSH    func(ctx context.Context) (*guestssh.Client, error)
	Events string    // host path of events.jsonl
	Out    io.Writer // the task's stdout
	// MaxEvents and Deadline bound the job (see jobrun.Runner).
	MaxEvents int64
	Deadline  time.Time
}

// Shutdown presses the power button and gives the guest until timeout to
// power off by itself; then it kills the VM. It reports whether the guest
// went down cleanly. A VM whose button cannot be pressed is killed at once:
// waiting would only delay the same end.
func Shutdown(ctx context.Context, m Machine, timeout time.Duration) (clean bool) {
	select {
	case <-m.Exited():
		return true
	default:
	}
	if err := m.PowerDown(ctx); err == nil {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-m.Exited():
			return true
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	m.Kill()
	return false
}

// ErrNoControl is PowerDown's error for an adopted VM whose control socket
// could not be reached.
var ErrNoControl = errors.New("no qmp connection")
