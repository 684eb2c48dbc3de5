// Package qemu starts, watches and stops the QEMU process behind one task:
// it builds the command line, launches QEMU detached so it outlives the
// plugin, names it by pid and start time, and speaks QMP to it.
package qemu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Accelerators the driver knows. KVM is preferred where it really works;
// TCG (software emulation) works everywhere, slowly.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Spec is everything that decides QEMU's command line for one guest.
type Spec struct {
	Binary   string // qemu-system-x86_64
	Name     string // shows in ps and QMP; the task id
	Accel    string // AccelKVM or AccelTCG
	MemoryMB int
	CPUs     int
	Disk     string // the task's qcow2 overlay
	Seed     string // the NoCloud ISO
	SSHHost  string // host address the guest's port 22 is forwarded from
	SSHPort  int
	QMP      string // unix socket path
	PIDFile  string
	// GID, when non-zero, is the group QEMU runs as: the host firewall
	// keeps that group off the host's own services (package isolation).
	GID int
	// Netns, when set, is the network namespace QEMU runs in (an
	// allocation's, under bridge networking).
	Netns string
	// Ephemeral guests (the accelerator probe's) die with the process
	// that started them instead of outliving it like a task's.
	Ephemeral bool
}

// Validate catches what QEMU would otherwise report in its own words, late.
func (s Spec) Validate() error {
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"binary", s.Binary}, {"disk", s.Disk}, {"seed", s.Seed},
		{"qmp socket", s.QMP}, {"pidfile", s.PIDFile}, {"ssh host", s.SSHHost},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("qemu spec is missing %s", strings.Join(missing, ", "))
	}
	if s.Accel != AccelKVM && s.Accel != AccelTCG {
		return fmt.Errorf("qemu spec: accelerator %q is neither kvm nor tcg", s.Accel)
	}
	if s.MemoryMB < 64 || s.CPUs < 1 {
		return fmt.Errorf("qemu spec: %d MiB and %d cpus is too small for a guest", s.MemoryMB, s.CPUs)
	}
	if s.SSHPort <= 0 || s.SSHPort > 65535 {
		return fmt.Errorf("qemu spec: ssh port %d out of range", s.SSHPort)
	}
	// sun_path is 108 bytes on Linux; QEMU fails obscurely beyond it
	// (nomad#13971 is the same trap in Nomad's own qemu driver).
	if len(s.QMP) >= 108 {
		return errors.New("qemu spec: qmp socket path is longer than a unix socket allows: " + s.QMP)
	}
	return nil
}

// Args returns QEMU's arguments, without the binary.
//
// The machine is deliberately plain (-nodefaults, virtio disk and NIC, the
// seed as an IDE CD-ROM) because that is what illumos and Linux cloud images
// both boot from. The serial console is QEMU's stdout, which the driver
// connects to the task's stdout so `nomad alloc logs` shows the boot.
func (s Spec) Args() []string {
	cpu := "max"
	if s.Accel == AccelKVM {
		cpu = "host"
	}
	args := []string{
		"-name", s.Name + ",process=solstice-" + s.Name,
		"-machine", "pc,accel=" + s.Accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(s.MemoryMB),
		"-smp", strconv.Itoa(s.CPUs),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		// The overlay is thrown away with the task, so host crash safety
		// buys nothing and cache=unsafe saves every guest fsync.
		"-drive", "file=" + escapeOpt(s.Disk) + ",if=virtio,format=qcow2,cache=unsafe,discard=unmap",
		"-drive", "file=" + escapeOpt(s.Seed) + ",if=ide,media=cdrom,readonly=on",
		// IPv6 is off: slirp would map the guest's fec0::2 to the host's
		// ::1, a second way around the isolation of the host's services.
		"-netdev", fmt.Sprintf("user,id=net0,ipv6=off,hostfwd=tcp:%s:%d-:22", s.SSHHost, s.SSHPort),
		"-device", "virtio-net-pci,netdev=net0",
		// Guests generate SSH host keys at first boot; without an entropy
		// source that can stall for seconds under TCG.
		"-device", "virtio-rng-pci",
		"-qmp", "unix:" + escapeOpt(s.QMP) + ",server=on,wait=off",
		"-pidfile", s.PIDFile,
	}
	return args
}

// escapeOpt doubles commas, QEMU's escape inside option values.
func escapeOpt(v string) string { return strings.ReplaceAll(v, ",", ",,") }
