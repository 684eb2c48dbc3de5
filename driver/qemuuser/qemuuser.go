// Package qemuuser finds, or creates, the unprivileged account QEMU runs
// as (the plugin's qemu_user), so that a guest that escapes the emulator
// lands in an account that owns nothing instead of in root.
//
// The group rule: when host isolation is on, QEMU's group is always the
// isolation group (isolation_gid), because the host firewall recognises
// QEMU's traffic by that gid. An account this package creates gets that
// group as its primary group, so /etc/passwd and the running QEMU agree; an
// existing account keeps its own primary group in /etc/passwd, and QEMU
// still runs with the isolation gid.
package qemuuser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
)

// Want is the configured account.
type Want struct {
	// Name is qemu_user: a user name, created when missing, or numbers,
	// "UID" or "UID:GID", used as they are.
	Name string
	// GID is the group QEMU must run as (isolation_gid), or 0 to use the
	// account's own.
	GID int
}

// Account is the resolved account.
type Account struct {
	Name     string // empty for numbers
	UID, GID int
}

// System is the host's account database; tests fake it.
type System interface {
	LookupUser(name string) (*user.User, error)
	LookupGroupID(gid string) (*user.Group, error)
	// Run runs an account tool (useradd, groupadd).
	Run(ctx context.Context, name string, args ...string) error
}

var (
	numericRe = regexp.MustCompile(`^([0-9]+)(?::([0-9]+))?$`)
	// nameRe is what useradd accepts by default (NAME_REGEX of Debian's
	// adduser, without the trailing $ of machine accounts); it also keeps
	// the name from reading as an option.
	nameRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Check validates the configured name without touching the system.
func Check(w Want) error {
	if m := numericRe.FindStringSubmatch(w.Name); m != nil {
		_, err := numeric(w, m)
		return err
	}
	if !nameRe.MatchString(w.Name) {
		return fmt.Errorf("qemu_user = %q: want a user name (lower-case letters, digits, '_', '-') or UID:GID", w.Name)
	}
	if w.Name == "root" {
		return errors.New(`qemu_user = "root": QEMU must not run as root`)
	}
	return nil
}

// Ensure returns the account, creating a named one that does not exist.
func Ensure(ctx context.Context, sys System, w Want) (Account, error) {
	if err := Check(w); err != nil {
		return Account{}, err
	}
	if m := numericRe.FindStringSubmatch(w.Name); m != nil {
		return numeric(w, m)
	}
	u, err := sys.LookupUser(w.Name)
	if errors.As(err, new(user.UnknownUserError)) {
		u, err = create(ctx, sys, w)
	}
	if err != nil {
		return Account{}, fmt.Errorf("qemu_user %q: %w", w.Name, err)
	}
	return account(w, u)
}

// numeric reads "UID" or "UID:GID".
func numeric(w Want, m []string) (Account, error) {
	uid, err := strconv.Atoi(m[1])
	if err != nil {
		return Account{}, fmt.Errorf("qemu_user = %q: %w", w.Name, err)
	}
	gid := w.GID
	switch {
	case m[2] == "" && gid == 0:
		return Account{}, fmt.Errorf("qemu_user = %q: give the group too (UID:GID) when host isolation is off", w.Name)
	case m[2] != "":
		g, err := strconv.Atoi(m[2])
		if err != nil {
			return Account{}, fmt.Errorf("qemu_user = %q: %w", w.Name, err)
		}
		if gid != 0 && g != gid {
			return Account{}, fmt.Errorf("qemu_user = %q: the group must be isolation_gid (%d): the host firewall knows QEMU by it", w.Name, gid)
		}
		gid = g
	}
	return checked(Account{UID: uid, GID: gid})
}

// account applies the group rule to a looked-up user.
func account(w Want, u *user.User) (Account, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Account{}, fmt.Errorf("qemu_user %q: uid %q: %w", w.Name, u.Uid, err)
	}
	gid := w.GID
	if gid == 0 {
		if gid, err = strconv.Atoi(u.Gid); err != nil {
			return Account{}, fmt.Errorf("qemu_user %q: gid %q: %w", w.Name, u.Gid, err)
		}
	}
	return checked(Account{Name: w.Name, UID: uid, GID: gid})
}

func checked(a Account) (Account, error) {
	if a.UID <= 0 || a.GID <= 0 {
		return Account{}, fmt.Errorf("qemu user %d:%d: QEMU must not run as root or with group root", a.UID, a.GID)
	}
	return a, nil
}

// create adds a system account with no home and no login shell. Another
// plugin process (a second client on the host) may create it at the same
// moment, so a failure is forgiven when the account is there afterwards.
func create(ctx context.Context, sys System, w Want) (*user.User, error) {
	err := addUser(ctx, sys, w)
	u, lookupErr := sys.LookupUser(w.Name)
	if lookupErr == nil {
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create it: %w", err)
	}
	return nil, fmt.Errorf("created it, but cannot find it: %w", lookupErr)
}

func addUser(ctx context.Context, sys System, w Want) error {
	args := []string{"--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--comment", "Solstice QEMU (unprivileged)"}
	if w.GID == 0 {
		args = append(args, "--user-group")
	} else {
		if err := ensureGroup(ctx, sys, w); err != nil {
			return err
		}
		args = append(args, "--gid", strconv.Itoa(w.GID))
	}
	return sys.Run(ctx, "useradd", append(args, w.Name)...)
}

// ensureGroup makes the isolation group, named like the user, unless some
// group already has its gid.
func ensureGroup(ctx context.Context, sys System, w Want) error {
	_, err := sys.LookupGroupID(strconv.Itoa(w.GID))
	if !errors.As(err, new(user.UnknownGroupIdError)) {
		return err
	}
	return sys.Run(ctx, "groupadd", "--system", "--gid", strconv.Itoa(w.GID), w.Name)
}

// Host is the real System: os/user and the shadow-utils tools.
type Host struct{}

// LookupUser looks in the host's user database.
func (Host) LookupUser(name string) (*user.User, error) { return user.Lookup(name) }

// LookupGroupID looks in the host's group database.
func (Host) LookupGroupID(gid string) (*user.Group, error) { return user.LookupGroupId(gid) }

// Run runs a tool and quotes its complaint.
func (Host) Run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
