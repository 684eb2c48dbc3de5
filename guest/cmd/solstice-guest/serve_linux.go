//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
)

// hostSystem is the guest itself.
func hostSystem() system {
	return system{calls: linuxCalls{}, spawn: spawnAs}
}

// applyIdentity puts id in place of the template's identity: the clock
// first, so the rest is stamped with the present; the template's keys and
// seed gone before anything can fail with them still there. The daemons
// that read the identity at boot are told later (settle). It returns how
// long each step took, for the log: an emulated guest's first seconds
// after a restore are its slowest.
func (sys system) applyIdentity(id contract.Identity) (string, error) {
	steps := []struct {
		name string
		do   func(contract.Identity) error
	}{
		{"clock", sys.setClock}, {"template secrets", sys.dropTemplateSecrets},
		{"reseed", sys.reseed}, {"login key", sys.authorize}, {"host key", sys.hostKey},
		{"hostname", sys.hostname}, {"machine id", sys.machineID}, {"instance id", sys.instanceID},
	}
	var times []string
	for _, step := range steps {
		start := time.Now()
		if err := step.do(id); err != nil {
			return "", err
		}
		times = append(times, fmt.Sprintf("%s %s", step.name, time.Since(start).Round(time.Millisecond)))
	}
	return strings.Join(times, ", "), nil
}

// settle is the rest of an identity, for the daemons that read it at
// boot (see server.settle): a fresh DHCP lease, sshd with the new key.
func (sys system) settle() error {
	sys.renewLease()
	return sys.reloadSSHD()
}

func (sys system) setClock(id contract.Identity) error {
	if err := sys.calls.SetClock(id.UnixNano); err != nil {
		return fmt.Errorf("set the clock: %w", err)
	}
	return nil
}

// seedFiles are the template's cloud-init seed, which held its host key.
var seedFiles = []string{"user-data", "meta-data", "vendor-data", "network-config", "seed.tsv"}

func (sys system) dropTemplateSecrets(contract.Identity) error {
	var paths []string
	entries, err := os.ReadDir(sys.path("/etc/ssh"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list the template's host keys: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ssh_host_") {
			paths = append(paths, sys.path("/etc/ssh/"+e.Name()))
		}
	}
	for _, f := range seedFiles {
		paths = append(paths, sys.path("/run/solstice/"+f))
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove the template's %s: %w", p, err)
		}
	}
	return nil
}

// reseed: the clone's kernel generator holds the template's state, so two
// clones would draw the same bytes; failing it fails the warm start.
func (sys system) reseed(id contract.Identity) error {
	return sys.calls.Reseed(id.Seed)
}

// authorize makes the task's key the login user's only one.
func (sys system) authorize(id contract.Identity) error {
	u, err := lookupLogin(sys.root, id.User)
	if err != nil {
		return err
	}
	dir := sys.path(filepath.Join(u.home, ".ssh"))
	keys := filepath.Join(dir, "authorized_keys")
	line := []byte(id.AuthorizedKey + "\n")
	if fi, err := os.Lstat(keys); err == nil && fi.Mode().IsRegular() {
		return rewriteInPlace(keys, line) // it keeps its owner and mode
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := os.Lchown(dir, u.uid, u.gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", dir, u.name, err)
	}
	return writeFileAtomic(keys, line, 0o600, &u)
}

func rewriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	return nil
}

func (sys system) hostKey(id contract.Identity) error {
	pem := id.HostKeyPEM
	if !strings.HasSuffix(pem, "\n") {
		pem += "\n"
	}
	key := sys.path("/etc/ssh/ssh_host_ed25519_key")
	if err := writeFileAtomic(key, []byte(pem), 0o600, nil); err != nil {
		return err
	}
	return writeFileAtomic(key+".pub", []byte(id.HostKeyPub+"\n"), 0o644, nil)
}

func (sys system) hostname(id contract.Identity) error {
	if err := sys.calls.SetHostname(id.Hostname); err != nil {
		return fmt.Errorf("set the host name: %w", err)
	}
	if err := writeFileAtomic(sys.path("/etc/hostname"), []byte(id.Hostname+"\n"), 0o644, nil); err != nil {
		return err
	}
	return sys.resolveHostname(id.Hostname)
}

// resolveHostname makes the new name resolve locally, as the template's
// did (sudo asks).
func (sys system) resolveHostname(name string) error {
	path := sys.path("/etc/hosts")
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return writeFileAtomic(path, hostsWith(data, name), fi.Mode().Perm(), nil)
}

// hostsWith is a hosts file whose 127.0.1.1 line names name: the first
// such line replaced, any other dropped, or one appended.
func hostsWith(hosts []byte, name string) []byte {
	entry := "127.0.1.1 " + name
	var out []string
	placed := false
	text := strings.TrimSuffix(string(hosts), "\n")
	for _, line := range strings.Split(text, "\n") {
		switch {
		case !strings.HasPrefix(line, "127.0.1.1 ") && !strings.HasPrefix(line, "127.0.1.1\t"):
			out = append(out, line)
		case !placed:
			out = append(out, entry)
			placed = true
		}
	}
	if text == "" {
		out = nil
	}
	if !placed {
		out = append(out, entry)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

func (sys system) machineID(id contract.Identity) error {
	return writeFileAtomic(sys.path("/etc/machine-id"), []byte(id.MachineID+"\n"), 0o444, nil)
}

// instanceID tells cloud-init, where the image has it, that this is a
// new instance.
func (sys system) instanceID(id contract.Identity) error {
	dir := sys.path("/var/lib/cloud/data")
	if fi, err := os.Stat(dir); id.InstanceID == "" || err != nil || !fi.IsDir() {
		return nil
	}
	return writeFileAtomic(filepath.Join(dir, "instance-id"), []byte(id.InstanceID+"\n"), 0o644, nil)
}

// renewLease asks for a fresh DHCP lease: udhcpc renews on SIGUSR1; else
// networkd or dhclient, not waited for. Best effort, as in the script.
func (sys system) renewLease() {
	renewed := false
	entries, _ := os.ReadDir(sys.path("/run"))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "udhcpc.") || !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		if pid, ok := readPID(sys.path("/run/" + e.Name())); ok && sys.calls.Signal(pid, unix.SIGUSR1) == nil {
			renewed = true
		}
	}
	if renewed {
		return
	}
	if err := sys.calls.Spawn("networkctl", "renew", "--all"); errors.Is(err, fs.ErrNotExist) {
		sys.calls.Spawn("dhclient", "-1")
	}
}

// reloadSSHD makes sshd load the new host key: SIGHUP makes it re-exec
// (sessions survive it); without a pid file, systemd reloads it.
func (sys system) reloadSSHD() error {
	if pid, ok := readPID(sys.path("/run/sshd.pid")); ok {
		if err := sys.calls.Signal(pid, unix.SIGHUP); err != nil {
			return fmt.Errorf("signal sshd (pid %d) to load the new host key: %w", pid, err)
		}
		return nil
	}
	err := sys.calls.Spawn("systemctl", "reload", sys.sshUnit())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reload sshd: %w", err)
	}
	return nil
}

// sshUnit is sshd's systemd unit: ssh on Debian-like systems, else sshd.
func (sys system) sshUnit() string {
	for _, d := range []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(sys.path(d + "/ssh.service")); err == nil {
			return "ssh"
		}
	}
	return "sshd"
}

// readPID reads a pid file's first line.
func readPID(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}

// spawnAs starts the job's detached process as u, as u's SSH login would
// (u's ids and groups, home, environment and umask), to wait for its
// Start. Its agent.log is u's, as it would be.
func spawnAs(u login, root, plan string) (waitingJob, error) {
	log := runner.NewLayout(root).Log
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", log, err)
	}
	defer f.Close()
	if err := f.Chown(u.uid, u.gid); err != nil {
		return nil, fmt.Errorf("give %s to %s: %w", log, u.name, err)
	}
	unix.Umask(0o022) // the job inherits it; serve's own files set their modes
	c, err := spawnChild(runFlags{root: root, plan: plan, detach: true}, f, asLogin(u))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// asLogin makes a command run as u's login does.
func asLogin(u login) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		cmd.Env = loginEnv("", u)
		cmd.Dir = "/"
		if fi, err := os.Stat(u.home); err == nil && fi.IsDir() {
			cmd.Dir = u.home
		}
		if u.uid == 0 {
			return
		}
		groups := make([]uint32, len(u.groups))
		for i, g := range u.groups {
			groups[i] = uint32(g)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: groups}
	}
}

// linuxCalls makes identity's system calls for real.
type linuxCalls struct{}

func (linuxCalls) SetClock(unixNano int64) error {
	ts := unix.NsecToTimespec(unixNano)
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

// rndReseedCRNG is RNDRESEEDCRNG, _IO('R', 0x07): reseed the kernel's
// generator from its input pool now. Nothing else is sure to in a clone:
// a kernel without the vmgenid driver ignores the new generation id, and
// the next scheduled reseed is up to a minute of guest clock away.
const rndReseedCRNG = 0x5207

func (linuxCalls) Reseed(seed []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reseed the kernel random generator: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(seed); err != nil {
		return fmt.Errorf("mix the seed into /dev/urandom: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("reseed the kernel random generator: %w", err)
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) { _, ioctlErr = unix.IoctlRetInt(int(fd), rndReseedCRNG) }); err != nil {
		return fmt.Errorf("reseed the kernel random generator: %w", err)
	}
	if ioctlErr != nil {
		return fmt.Errorf("reseed the kernel random generator (RNDRESEEDCRNG): %w", ioctlErr)
	}
	return nil
}

func (linuxCalls) SetHostname(name string) error { return unix.Sethostname([]byte(name)) }

func (linuxCalls) Signal(pid int, sig syscall.Signal) error { return unix.Kill(pid, sig) }

// rootPath is where Spawn looks for programs: serve's own PATH is
// whatever sudo left it.
var rootPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

func (linuxCalls) Spawn(argv ...string) error {
	for _, dir := range rootPath {
		path := filepath.Join(dir, argv[0])
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		cmd := exec.Command(path, argv[1:]...)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		go cmd.Wait() // reaped, never waited for
		return nil
	}
	return fmt.Errorf("%s: %w", argv[0], fs.ErrNotExist)
}
