// Package accel decides whether this host's guests run under KVM or under
// TCG (software emulation), by trying KVM for real. /dev/kvm existing proves
// little: on some hosts (nested virtualisation, odd CPU templates) KVM guests
// hang at boot, and a driver that trusted the device file would hang every
// job. So the probe escalates: open the device, run a tiny canary guest, and
// finally boot a real catalog image and log into it.
package accel

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/solstice-ci/solstice/driver/qemu"
)

// Names of the accelerators.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// Result is the probe's verdict.
type Result struct {
	Name   string // KVM or TCG
	Reason string // why, in words an operator can act on
}

//go:embed canary.bin
var canary []byte

const canaryOK = "solstice-canary-ok"

// CheckDevice opens /dev/kvm the way QEMU will.
func CheckDevice(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	return f.Close()
}

// Canary is one run of the canary guest.
type Canary struct {
	QemuBinary string
	Accel      string // KVM or TCG
	WorkDir    string
	Limit      time.Duration
	// User is who QEMU runs as, as a task's QEMU would: under KVM its
	// access to /dev/kvm is part of what the canary proves.
	User *qemu.User
}

// RunCanary boots the canary boot sector and reports whether it reached
// long mode after a timer interrupt within the limit. Like every QEMU the
// driver starts, it runs under qemu.SandboxOpts as its user, with its disk
// passed as a descriptor; its debug console is QEMU's stdout.
func RunCanary(ctx context.Context, c Canary) error {
	dir, err := os.MkdirTemp(c.WorkDir, "canary-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	disk, out := filepath.Join(dir, "canary.img"), filepath.Join(dir, "debugcon.log")
	if err := os.WriteFile(disk, canary, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Limit)
	defer cancel()
	cmd, held, err := canaryCommand(ctx, c, disk, out)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Start()
	qemu.CloseFiles(held) // QEMU holds its own copies
	if err != nil {
		return fmt.Errorf("start %s: %w", c.QemuBinary, err)
	}
	return watchCanary(ctx, cmd, &stderr, out, c.Limit)
}

// canaryCommand builds the canary's QEMU and returns the descriptors it
// inherits, for the caller to close once QEMU has started.
func canaryCommand(ctx context.Context, c Canary, disk, out string) (*exec.Cmd, []*os.File, error) {
	files := []qemu.Passed{{Path: disk, Writable: true, Set: 1}}
	fds, err := qemu.OpenPassed(files)
	if err != nil {
		return nil, nil, err
	}
	stdout, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		qemu.CloseFiles(fds)
		return nil, nil, err
	}
	args := append(qemu.SandboxArgs(), qemu.PassArgs(3, files)...)
	args = append(args,
		"-machine", "pc,accel="+c.Accel, "-nodefaults", "-display", "none", "-m", "16",
		"-drive", "file="+qemu.FDSet(1)+",format=raw,if=ide",
		"-chardev", "stdio,id=dbg,signal=off", "-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	cmd := exec.CommandContext(ctx, c.QemuBinary, args...)
	cmd.ExtraFiles, cmd.Stdout = fds, stdout
	cmd.SysProcAttr = c.User.SysProcAttr()
	// The canary must not outlive the plugin if Nomad kills it mid-probe.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return cmd, append(fds, stdout), nil
}

// watchCanary waits for the canary's word in out, its exit or the limit.
func watchCanary(ctx context.Context, cmd *exec.Cmd, stderr *bytes.Buffer, out string, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		if data, _ := os.ReadFile(out); bytes.Contains(data, []byte(canaryOK)) {
			cmd.Process.Kill()
			<-done
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("canary guest exited early (%v): %s", err, bytes.TrimSpace(stderr.Bytes()))
		case <-ctx.Done():
			<-done
			return fmt.Errorf("canary guest made no progress within %s", limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBoot boots a real guest under KVM and says whether it came up. It is
// supplied by the driver, which knows how to make a task's disk and seed.
type TestBoot func(ctx context.Context, accel string) error

// Options configure a probe.
type Options struct {
	Mode       string // auto, kvm or tcg (the plugin config's accelerator)
	QemuBinary string
	Device     string // /dev/kvm
	WorkDir    string
	// User is who the canary's QEMU runs as (see Canary.User).
	User *qemu.User
	// Boot, when set, is the last and decisive step of an auto probe.
	Boot TestBoot
}

// ErrUnverified means KVM passed the cheap checks but no real guest could be
// test-booted yet, so TCG is used until one can.
var ErrUnverified = errors.New("kvm is unverified")

// Probe returns the accelerator to use. With Mode "kvm" a failing check is an
// error (the operator demanded KVM); with "auto" it falls back to TCG and
// says why.
func Probe(ctx context.Context, o Options) (Result, error) {
	if o.Mode == TCG {
		return Result{Name: TCG, Reason: "accelerator = \"tcg\" in the plugin config"}, nil
	}
	err := probeKVM(ctx, o)
	switch {
	case err == nil:
		return Result{Name: KVM, Reason: "kvm device usable and a test guest booted under it"}, nil
	case o.Mode == KVM:
		return Result{}, fmt.Errorf("accelerator = \"kvm\" but KVM does not work here: %w", err)
	case errors.Is(err, ErrUnverified):
		return Result{Name: TCG, Reason: err.Error()}, err
	default:
		return Result{Name: TCG, Reason: "falling back to tcg: " + err.Error()}, nil
	}
}

func probeKVM(ctx context.Context, o Options) error {
	if err := CheckDevice(o.Device); err != nil {
		return err
	}
	c := Canary{QemuBinary: o.QemuBinary, Accel: KVM, WorkDir: o.WorkDir, Limit: 15 * time.Second, User: o.User}
	if err := RunCanary(ctx, c); err != nil {
		return fmt.Errorf("kvm canary: %w", err)
	}
	if o.Boot == nil {
		return fmt.Errorf("%w: the canary ran, but no catalog image is cached yet to test-boot", ErrUnverified)
	}
	if err := o.Boot(ctx, KVM); err != nil {
		return fmt.Errorf("kvm canary ran, but a real guest did not come up under kvm: %w", err)
	}
	return nil
}
