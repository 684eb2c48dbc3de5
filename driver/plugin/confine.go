package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/solstice-ci/solstice/driver/accel"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/qemuuser"
)

// setUpQEMUUser finds or creates the account QEMU runs as. Without it the
// driver is unhealthy and starts no QEMU: it never falls back to root.
func (d *Driver) setUpQEMUUser(cfg *Config) {
	var acct qemuuser.Account
	var err error
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		acct, err = qemuuser.Ensure(ctx, qemuuser.Host{}, cfg.qemuAccount())
		if err != nil {
			err = fmt.Errorf("cannot run QEMU unprivileged: %w", err)
			d.log.Error("no account for QEMU", "error", err)
		}
	} else {
		d.log.Warn("the plugin is not root: QEMU runs as the plugin's own user, and qemu_user is ignored")
	}
	d.setQEMUAccount(acct, err)
}

// setQEMUAccount records the account; tests set one directly.
func (d *Driver) setQEMUAccount(acct qemuuser.Account, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.qemu, d.qemuErr = acct, err
}

// errNoQEMUUser stops a QEMU from starting before the account is known.
var errNoQEMUUser = errors.New("the account QEMU runs as is not set up yet")

// qemuUser is who a QEMU under the named accelerator runs as: the qemu
// account with no supplementary groups; under KVM, also the group of
// /dev/kvm when that group may open it. That group grants exactly the
// device on a stock host; an ACL on /dev/kvm for the qemu user (setfacl,
// kept by a udev rule) is the narrower alternative and needs no group.
// A plugin that is not root cannot switch users, so its QEMU runs as
// itself (nil).
func (d *Driver) qemuUser(accelName string) (*qemu.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	d.mu.RLock()
	acct, err := d.qemu, d.qemuErr
	d.mu.RUnlock()
	switch {
	case err != nil:
		return nil, err
	case acct.UID <= 0:
		return nil, errNoQEMUUser
	}
	u := &qemu.User{UID: uint32(acct.UID), GID: uint32(acct.GID)}
	if accelName == accel.KVM {
		u.Groups = deviceGroup("/dev/kvm")
	}
	return u, nil
}

// deviceGroup is the group of a device node when that group may read and
// write it and is not root's.
func deviceGroup(path string) []uint32 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil || st.Gid == 0 || st.Mode&0o060 != 0o060 {
		return nil
	}
	return []uint32{st.Gid}
}

// makePrivateDir makes a task's VM dir root's alone (0700, also when it
// exists already). QEMU, under its own user, gets the overlay and the seed
// as descriptors and needs no access to the dir; nothing else on the host
// may read the seed (it holds the guest's private host key) or the disk.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create vm dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict vm dir: %w", err)
	}
	return nil
}

// qemuHealth says why no QEMU can start, or nil.
func (d *Driver) qemuHealth() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.qemuErr
}
