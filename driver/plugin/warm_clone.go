package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/template"
)

// bootWarmOrCold starts the task as a clone of its image's template when
// there is one, and boots it cold otherwise, or when the clone fails to
// come up: a broken template costs a task time, never its run.
func (l *launch) bootWarmOrCold(ctx context.Context) (*task.Handle, error) {
	l.clone = l.warmTemplate()
	if l.clone == nil {
		return l.boot(ctx)
	}
	h, err := l.boot(ctx)
	if err == nil {
		return h, nil
	}
	id := l.clone.tpl.Manifest.Key.ID()
	l.releaseTemplate()
	l.rollback()
	l.undo, l.clone, l.hostKey = nil, nil, nil
	l.log.Warn("warm start failed; booting cold", "template", id, "error", err)
	l.d.emit(l.cfg, "Cold start", fmt.Sprintf("warm start from template %s failed: %v", id, err))
	return l.boot(ctx)
}

// warmNote is the "Booting" event's word on where the guest comes from.
func (l *launch) warmNote() string {
	if l.clone == nil {
		return ""
	}
	return ", restored from template " + l.clone.tpl.Manifest.Key.ID()
}

// warmTimes is the Started event's word on a clone's restore and identity
// reset, which the benchmark reads too.
func (l *launch) warmTimes() string {
	if l.clone == nil {
		return ""
	}
	return fmt.Sprintf(" (restored in %s, own identity in %s)", l.restored.Round(10*time.Millisecond), l.reidentified.Round(10*time.Millisecond))
}

// restoreFrom makes spec a clone of the template: its disk on the frozen
// one, its RAM the template's file mapped privately, its devices from the
// saved state.
func (l *launch) restoreFrom(spec *qemu.Spec) {
	if l.clone == nil {
		return
	}
	t := l.clone.tpl
	// A restore needs the template's devices exactly: the template had the
	// agent disk, so every clone has it, with or without a plan to run.
	spec.AgentDisk = l.clone.agentDisk.Path
	spec.Template = t.Path(template.DiskFile)
	spec.RAM = &qemu.RAM{Path: t.Path(template.RAMFile)}
	spec.Incoming = t.Path(template.StateFile)
}

// releaseTemplate lets a rebuild replace the template again; a clone's
// QEMU keeps the files it opened.
func (l *launch) releaseTemplate() {
	if l.clone != nil && l.clone.release != nil {
		l.clone.release()
		l.clone.release = nil
	}
}

// reidentifyTimeout bounds the identity reset of a restored clone.
const reidentifyTimeout = 2 * time.Minute

// reidentify gives a restored clone its own identity before anything else
// logs in: the driver logs in as the template (its key and host key are
// the driver's alone) and replaces the login key, host key, hostname,
// machine id, random state, clock and lease with the task's. After it only
// the task's key opens the guest, and logins insist on the task's host key.
func (l *launch) reidentify(ctx context.Context) (*guestssh.Client, error) {
	if l.clone == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reidentifyTimeout)
	defer cancel()
	start := time.Now()
	defer func() { l.reidentified = time.Since(start) }()
	key, err := l.clone.tpl.LoginKey()
	if err != nil {
		return nil, err
	}
	t := l.st.SSHTarget(key)
	t.HostKey = l.clone.tpl.Manifest.HostKey
	c, err := guestssh.WaitReady(ctx, t, 100*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("log into the restored clone as its template: %w", err)
	}
	script, err := identityScript(l.identity())
	if err != nil {
		c.Close()
		return nil, err
	}
	loggedIn := time.Since(start)
	if out, err := c.Output(ctx, asRoot("sh -s"), strings.NewReader(script)); err != nil {
		c.Close()
		return nil, fmt.Errorf("reset the clone's identity: %w: %s", err, bound(out))
	}
	l.log.Info("clone has its own identity", "login", loggedIn.Round(time.Millisecond).String(),
		"script", (time.Since(start) - loggedIn).Round(time.Millisecond).String())
	return c, nil
}

// identity is what makes the clone the task's guest.
type identity struct {
	User, AuthorizedKey    string
	HostKeyPEM, HostKeyPub string
	Hostname, InstanceID   string
}

func (l *launch) identity() identity {
	return identity{
		User: l.img.User, AuthorizedKey: l.authorizedKey,
		HostKeyPEM: l.hostKey.PrivatePEM, HostKeyPub: l.hostKey.Public,
		Hostname: hostname(l.cfg), InstanceID: l.cfg.AllocID,
	}
}

// identityScript is the shell script (run as root in the clone) that puts
// id in place of the template's identity. Values are shell-quoted; the
// random seed and machine id are made here, the clock is read last.
func identityScript(id identity) (string, error) {
	seed := make([]byte, 512)
	machineID := make([]byte, 16)
	if _, err := rand.Read(seed); err != nil {
		return "", fmt.Errorf("make the clone's random seed: %w", err)
	}
	if _, err := rand.Read(machineID); err != nil {
		return "", fmt.Errorf("make the clone's machine id: %w", err)
	}
	q := guestssh.ShellQuote
	now := time.Now()
	return fmt.Sprintf(identityTemplate,
		now.Unix(), fmt.Sprintf("%09d", now.Nanosecond()),
		q(guestssh.PrintfFormat(seed)),
		q(id.User), q(id.AuthorizedKey),
		q(id.HostKeyPEM), q(id.HostKeyPub),
		q(id.Hostname), q(hex.EncodeToString(machineID)), q(id.InstanceID),
	), nil
}

// identityTemplate is identityScript's shell, for Linux guests. The clock
// comes first, so the rest is stamped with the present; sshd is told last
// (SIGHUP makes it re-exec and load the new host key; the driver's session
// survives it). Every program costs an emulated guest a tenth of a second
// or more, so the script runs only date, perl (the reseed) and one rm:
// the rest is the shell's own printf, read, kill and redirections, with
// umask giving new files their modes.
const identityTemplate = `set -eu
umask 077
date -u -s @%d.%s >/dev/null 2>&1 || date -u -s @%[1]d >/dev/null
# The template's keys and seed (as its boot read it: it held the template's
# host key) go first, so nothing below can fail with them still there.
rm -rf /etc/ssh/ssh_host_* /run/solstice/user-data /run/solstice/meta-data /run/solstice/vendor-data /run/solstice/network-config /run/solstice/seed.tsv
# The clone's kernel generator holds the template's state: mix fresh host
# randomness in, then make the kernel reseed from it (see reseedShell).
printf %[3]s >/dev/urandom
` + reseedShell + `user=%[4]s
home=
while IFS=: read -r name _ _ _ _ dir _; do
  if [ "$name" = "$user" ]; then home=$dir; break; fi
done </etc/passwd
[ -n "$home" ] || { echo "no user $user"; exit 1; }
keys=$home/.ssh/authorized_keys
if [ -f "$keys" ] && [ ! -L "$keys" ]; then
  # Rewritten in place: it keeps its owner and mode.
  printf '%%s\n' %[5]s >"$keys"
else
  mkdir -p "$home/.ssh"
  printf '%%s\n' %[5]s >"$keys.new"
  chown -R "$user" "$home/.ssh"
  mv -f "$keys.new" "$keys"
fi
printf '%%s\n' %[6]s >/etc/ssh/ssh_host_ed25519_key
umask 022
printf '%%s\n' %[7]s >/etc/ssh/ssh_host_ed25519_key.pub
printf '%%s' %[8]s >/proc/sys/kernel/hostname
printf '%%s\n' %[8]s >/etc/hostname
# The new name resolves locally, as the template's did (sudo asks).
if [ -f /etc/hosts ]; then
  hosts=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
    "127.0.1.1 "* | "127.0.1.1	"*) ;;
    *) hosts="$hosts$line
" ;;
    esac
  done </etc/hosts
  printf '%%s127.0.1.1 %%s\n' "$hosts" %[8]s >/etc/hosts
fi
umask 0333
printf '%%s\n' %[9]s >/etc/machine-id
umask 022
if [ -d /var/lib/cloud/data ]; then printf '%%s\n' %[10]s >/var/lib/cloud/data/instance-id; fi
# A fresh DHCP lease: udhcpc renews on SIGUSR1; else dhclient or networkd.
renewed=
for p in /run/udhcpc.*.pid; do
  if [ -s "$p" ] && read -r pid <"$p" && kill -USR1 "$pid" 2>/dev/null; then renewed=1; fi
done
if [ -z "$renewed" ]; then
  if command -v networkctl >/dev/null 2>&1; then networkctl renew --all >/dev/null 2>&1 || true
  elif command -v dhclient >/dev/null 2>&1; then dhclient -1 >/dev/null 2>&1 || true
  fi
fi
if [ -s /run/sshd.pid ] && read -r pid </run/sshd.pid; then kill -HUP "$pid"
elif command -v systemctl >/dev/null 2>&1; then systemctl reload ssh 2>/dev/null || systemctl reload sshd
fi
`

// reseedShell makes a Linux kernel reseed its random generator now
// (RNDRESEEDCRNG, 0x5207), from what is in its input pool. Nothing else is
// sure to in a clone: a kernel without the vmgenid driver ignores the
// device's new generation id, and the next scheduled reseed is up to a
// minute of the guest's clock away. Without a reseed two clones draw the
// same random bytes, so failing it fails the warm start. The ioctl needs a
// program that can make it; Debian-like guests have perl, others python3.
const reseedShell = `if command -v perl >/dev/null 2>&1; then
  perl -e 'open(my $f, ">", "/dev/urandom") or die "open /dev/urandom: $!\n"; ioctl($f, 0x5207, 0) or die "reseed the kernel random generator (RNDRESEEDCRNG): $!\n"'
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import fcntl; fcntl.ioctl(open("/dev/urandom", "wb"), 0x5207, 0)'
else
  echo "cannot reseed the kernel random generator: the guest has neither perl nor python3"; exit 1
fi
`

// asRoot runs cmd as root: directly for root, else through sudo -n (the
// template's seed gave the image's user passwordless sudo).
func asRoot(cmd string) string {
	return `if [ "$(id -u)" = 0 ]; then exec ` + cmd + `; else exec sudo -n ` + cmd + `; fi`
}

// bound keeps guest output in an error message short.
func bound(b []byte) string {
	const max = 1024
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}
