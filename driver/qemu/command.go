// Package qemu starts, watches and stops the QEMU process behind one task:
// it builds the command line, launches QEMU detached so it outlives the
// plugin, names it by pid and start time, and speaks QMP to it.
package qemu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Accelerators the driver knows. KVM is preferred where it really works;
// TCG (software emulation) works everywhere, slowly.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Spec is everything that decides QEMU's command line for one guest.
type Spec struct {
	Binary     string // qemu-system-x86_64
	Name       string // shows in ps and QMP; the task id
	Accel      string // AccelKVM or AccelTCG
	MemoryMB   int
	CPUs       int
	Disk       string // the task's qcow2 overlay
	Base       string // the read-only base image under the overlay
	BaseFormat string // qcow2 or raw
	Seed       string // the NoCloud seed volume
	// SeedDisk attaches the seed as a read-only virtio disk instead of an
	// IDE CD-ROM: a FAT seed (cloudinit.FormatFAT) is a disk image, and
	// Linux will not mount FAT from a CD-ROM's 2048-byte sectors.
	SeedDisk bool
	// AgentDisk, when set, is the guest agent's read-only disk image
	// (package agentdisk), attached as one more read-only virtio disk.
	AgentDisk string
	SSHHost   string // host address the guest's port 22 is forwarded from
	SSHPort   int
	QMP       string // unix socket path, bound by the driver (see Start)
	PIDFile   string // written by Start with QEMU's pid
	// User is the account QEMU runs as; nil keeps the caller's (only a
	// plugin that is not root, and so cannot switch, leaves it nil).
	User *User
	// Netns, when set, is the network namespace QEMU runs in (an
	// allocation's, under bridge networking).
	Netns string
	// Ephemeral guests (the accelerator probe's) die with the process
	// that started them instead of outliving it like a task's.
	Ephemeral bool
	// Warm starts (see snapshot.go): RAM in a file; Template, a clone's
	// read-only template overlay between Disk and Base; Incoming, the
	// template's saved device state a clone starts from.
	RAM      *RAM
	Template string
	Incoming string
	// AgentPort, when set, is a connected socket QEMU inherits as the
	// backend of the agent port, a virtio-serial port named
	// contract.AgentPortName (see package agentport). Templates and their
	// clones have it; the caller keeps the other end and closes this one
	// once QEMU has started.
	AgentPort *os.File
}

// Validate catches what QEMU would otherwise report in its own words, late.
func (s Spec) Validate() error {
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"binary", s.Binary}, {"disk", s.Disk}, {"base", s.Base}, {"seed", s.Seed},
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
	if s.BaseFormat != "qcow2" && s.BaseFormat != "raw" {
		return fmt.Errorf("qemu spec: base format %q is neither qcow2 nor raw", s.BaseFormat)
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
	return s.validateConfinement()
}

// validateConfinement refuses what would undo QEMU's confinement.
func (s Spec) validateConfinement() error {
	if s.User != nil && (s.User.UID == 0 || s.User.GID == 0) {
		return fmt.Errorf("qemu spec: user %d:%d: QEMU must not run as root or with group root", s.User.UID, s.User.GID)
	}
	// A netns start forks from a thread that is discarded afterwards (see
	// startIn), and a parent-death signal follows the forking thread.
	if s.Ephemeral && s.Netns != "" {
		return errors.New("qemu spec: an ephemeral guest cannot run in a network namespace")
	}
	return nil
}

// QEMU's inherited descriptors, in cmd.ExtraFiles order: the QMP listener
// (fd 3), then the descriptors of Spec.passed from fd 4 on.
const (
	fdQMP       = 3
	fdFirstFile = 4
)

// The fd sets of a guest's files.
const (
	setDisk = 1 + iota
	setBase
	setSeed
	setAgent
	setTemplate // a clone's template overlay (read-only)
)

// passed are the files QEMU gets as descriptors: it opens no path of ours.
// The base is named explicitly as the overlay's backing file, so the path in
// the overlay's header is never opened either.
func (s Spec) passed() []Passed {
	files := []Passed{
		{Path: s.Disk, Writable: true, Set: setDisk},
		{Path: s.Base, Set: setBase},
		{Path: s.Seed, Set: setSeed},
	}
	if s.AgentDisk != "" {
		files = append(files, Passed{Path: s.AgentDisk, Set: setAgent})
	}
	if s.Template != "" {
		files = append(files, Passed{Path: s.Template, Set: setTemplate})
	}
	return files
}

// Args returns QEMU's arguments, without the binary.
//
// The machine is deliberately plain (-nodefaults, virtio disk and NIC, the
// seed as an IDE CD-ROM) because that is what illumos and Linux cloud images
// both boot from. The serial console is QEMU's stdout, which the driver
// connects to the task's stdout so `nomad alloc logs` shows the boot.
// Files come as inherited descriptors (see passed), the QMP socket as a
// listening descriptor (see Start), and QEMU runs under SandboxOpts.
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
	}
	args = append(args, SandboxArgs()...)
	args = append(args, PassArgs(fdFirstFile, s.passed())...)
	args = append(args,
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		// The overlay is thrown away with the task, so host crash safety
		// buys nothing and cache=unsafe saves every guest fsync.
		"-drive", s.diskDrive(),
		"-drive", s.seedDrive(),
	)
	// After the boot disk and the seed, so it moves neither.
	if s.AgentDisk != "" {
		args = append(args, "-drive", "file="+FDSet(setAgent)+",if=virtio,readonly=on,format=raw")
	}
	args = append(args,
		// IPv6 is off: slirp would map the guest's fec0::2 to the host's
		// ::1, a second way around the isolation of the host's services.
		"-netdev", fmt.Sprintf("user,id=%s,ipv6=off,hostfwd=tcp:%s:%d-:22", netdevID, s.SSHHost, s.SSHPort),
		"-device", "virtio-net-pci,netdev="+netdevID,
		// Guests generate SSH host keys at first boot; without an entropy
		// source that can stall for seconds under TCG.
		"-device", "virtio-rng-pci",
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d,server=on,wait=off", fdQMP),
		"-mon", "chardev=qmp,mode=control",
	)
	args = append(args, s.agentPortArgs()...)
	return append(args, s.snapshotArgList()...)
}

// agentPortArgs attach the agent port: its socket is the descriptor after
// the snapshot's (see open), already connected, so QEMU is its client.
func (s Spec) agentPortArgs() []string {
	if s.AgentPort == nil {
		return nil
	}
	fd := fdFirstFile + len(descriptors(s.passed())) + len(s.extraFiles())
	return []string{
		"-device", "virtio-serial-pci,id=agentbus",
		"-chardev", fmt.Sprintf("socket,id=agentport,fd=%d", fd),
		"-device", "virtserialport,bus=agentbus.0,chardev=agentport,name=" + contract.AgentPortName,
	}
}

// seedDrive is the -drive value of the seed (see SeedDisk).
func (s Spec) seedDrive() string {
	if s.SeedDisk {
		return "file=" + FDSet(setSeed) + ",if=virtio,readonly=on,format=raw"
	}
	return "file=" + FDSet(setSeed) + ",if=ide,media=cdrom,readonly=on,format=raw"
}

// netdevID names the guest's user-mode network, where QMP adds forwards.
const netdevID = "net0"
