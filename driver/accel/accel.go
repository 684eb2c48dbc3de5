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

// RunCanary boots the canary boot sector under accel and reports whether it
// reached long mode after a timer interrupt within limit.
func RunCanary(ctx context.Context, qemuBinary, accel, workDir string, limit time.Duration) error {
	dir, err := os.MkdirTemp(workDir, "canary-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	disk := filepath.Join(dir, "canary.img")
	out := filepath.Join(dir, "debugcon.log")
	if err := os.WriteFile(disk, canary, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBinary,
		"-machine", "pc,accel="+accel, "-nodefaults", "-display", "none", "-m", "16",
		"-drive", "file="+disk+",format=raw,if=ide",
		"-chardev", "file,id=dbg,path="+out, "-device", "isa-debugcon,iobase=0x402,chardev=dbg")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// The canary must not outlive the plugin if Nomad kills it mid-probe.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", qemuBinary, err)
	}
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
	if err := RunCanary(ctx, o.QemuBinary, KVM, o.WorkDir, 15*time.Second); err != nil {
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
