package qemu

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// SandboxOpts is the seccomp policy (-sandbox) of every QEMU the driver
// starts, guests and probes alike. On top of QEMU's default deny list:
//
//   - obsolete: syscalls no current program needs;
//   - elevateprivileges: set*uid, set*gid and friends, so a taken-over QEMU
//     cannot move to another account;
//   - spawn: fork and exec, so it cannot start helpers (the driver uses no
//     QEMU feature that needs one: no smb=, no ifup scripts);
//   - resourcecontrol: scheduler and priority calls.
//
// elevateprivileges=deny rules out QEMU's own -runas: QEMU installs the
// filter before it switches to the -runas user, and that setuid then dies
// of SIGSYS (QEMU 7.2, tried). So QEMU is started as its user instead (see
// User).
const SandboxOpts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// SandboxArgs are QEMU's arguments for SandboxOpts.
func SandboxArgs() []string { return []string{"-sandbox", SandboxOpts} }

// User is the unprivileged account QEMU runs as, so that an escape from
// the emulator lands in an account that owns nothing and can open none of
// the driver's files: QEMU gets the files it needs as open descriptors
// (see Passed) instead.
type User struct {
	UID, GID uint32
	// Groups are supplementary groups: none, except that under KVM the
	// group of /dev/kvm may be needed to open it.
	Groups []uint32
}

// SysProcAttr is how every QEMU process starts: in a session of its own, so
// neither a plugin crash nor a Nomad client restart takes it down, and as u.
// The kernel switches the child to u before exec (setgroups, setgid,
// setuid), so QEMU itself never runs as root. A nil u keeps the caller's
// user: a plugin that is not root cannot switch.
func (u *User) SysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setsid: true}
	if u != nil {
		attr.Credential = &syscall.Credential{
			Uid: u.UID, Gid: u.GID,
			Groups: append([]uint32{}, u.Groups...), // empty: setgroups(0)
		}
	}
	return attr
}

// Passed is a host file QEMU gets as an inherited descriptor in an fd set,
// instead of opening it by path: the driver opens it as root and QEMU, under
// its own user, needs no permission on the file or on the directories above
// it (Nomad's alloc dir, the image cache). QEMU options name the file as
// FDSet(Set).
type Passed struct {
	Path     string
	Writable bool
	Set      int // 1 and up
}

// FDSet is how QEMU options name the files of fd set n.
func FDSet(n int) string { return "/dev/fdset/" + strconv.Itoa(n) }

// descriptor is one inherited descriptor of a Passed file.
type descriptor struct {
	path string
	flag int
	set  int
}

// descriptors expands files into descriptors in inheritance order. QEMU
// opens a writable image read-only first and read-write once the guest's
// disk attaches (file-posix's dynamic auto-read-only), each time asking the
// set for a descriptor of that access mode, so a writable file's set holds
// one of each.
func descriptors(files []Passed) []descriptor {
	var ds []descriptor
	for _, f := range files {
		if f.Writable {
			ds = append(ds, descriptor{f.Path, os.O_RDWR, f.Set})
		}
		ds = append(ds, descriptor{f.Path, os.O_RDONLY, f.Set})
	}
	return ds
}

// PassArgs returns the -add-fd options for files whose descriptors QEMU
// inherits from fd first on (3 is cmd.ExtraFiles[0]), in OpenPassed order.
func PassArgs(first int, files []Passed) []string {
	var args []string
	for i, d := range descriptors(files) {
		args = append(args, "-add-fd", fmt.Sprintf("fd=%d,set=%d", first+i, d.set))
	}
	return args
}

// OpenPassed opens files for cmd.ExtraFiles, in PassArgs order. The caller
// closes them once QEMU has started: QEMU holds its own copies.
func OpenPassed(files []Passed) ([]*os.File, error) {
	var open []*os.File
	for _, d := range descriptors(files) {
		f, err := os.OpenFile(d.path, d.flag, 0)
		if err != nil {
			CloseFiles(open)
			return nil, fmt.Errorf("open %s for qemu: %w", d.path, err)
		}
		open = append(open, f)
	}
	return open, nil
}

// CloseFiles closes descriptors QEMU has inherited copies of.
func CloseFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
