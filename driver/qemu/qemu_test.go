package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	// fields 4..13, then utime 17, stime 23, …, starttime (field 22) 987654
	tail := " 1 1 0 -1 4194560 100 0 0 0 0 17 23 0 0 20 0 4 0 987654 1000 100"
	tests := []struct {
		name      string
		in        string
		wantState string
		wantStart uint64
		wantErr   bool
	}{
		{"plain", "42 (qemu-system-x86) S" + tail, "S", 987654, false},
		{"name with spaces and parens", "42 (a) b (c) Z" + tail, "Z", 987654, false},
		{"no name", "42 qemu S 1 2", "", 0, true},
		{"truncated", "42 (qemu) S 1 2 3", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStat(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseStat accepted %q", tt.in)
				}
				return
			}
			if err != nil || st.state != tt.wantState || st.startTime != tt.wantStart || st.utime != 17 || st.stime != 23 {
				t.Fatalf("parseStat = %+v, %v", st, err)
			}
		})
	}
}

func TestProcessIdentity(t *testing.T) {
	self, err := Identify(os.Getpid())
	if err != nil || !self.Alive() {
		t.Fatalf("Identify(self) = %+v, %v", self, err)
	}
	// The same pid with another start time is another process: never ours.
	impostor := Process{PID: self.PID, StartTime: self.StartTime + 1}
	if impostor.Alive() {
		t.Fatal("a pid with a different start time counted as alive")
	}
	if err := impostor.Signal(syscall.Signal(0)); err != ErrGone {
		t.Fatalf("signalling an impostor = %v, want ErrGone", err)
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if child.Alive() {
		t.Fatal("a killed and reaped child still counts as alive")
	}
}

func validSpec() Spec {
	return Spec{
		Binary: "qemu-system-x86_64", Name: "t1", Accel: AccelTCG, MemoryMB: 512, CPUs: 1,
		Disk: "/d/disk.qcow2", Base: "/cache/base.qcow2", BaseFormat: "qcow2", Seed: "/d/seed.iso",
		SSHHost: "127.0.0.1", SSHPort: 2222, QMP: "/d/qmp.sock", PIDFile: "/d/qemu.pid",
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"valid", func(*Spec) {}, ""},
		{"missing paths", func(s *Spec) { s.Disk, s.Base, s.Seed = "", "", "" }, "missing disk, base, seed"},
		{"bad base format", func(s *Spec) { s.BaseFormat = "vmdk" }, `base format "vmdk"`},
		{"root user", func(s *Spec) { s.User = &User{UID: 0, GID: 64999} }, "must not run as root"},
		{"root group", func(s *Spec) { s.User = &User{UID: 64998, GID: 0} }, "must not run as root"},
		{"ephemeral in a netns", func(s *Spec) { s.Ephemeral, s.Netns = true, "/run/netns/x" }, "cannot run in a network namespace"},
		{"bad accel", func(s *Spec) { s.Accel = "hvf" }, `accelerator "hvf"`},
		{"tiny memory", func(s *Spec) { s.MemoryMB = 16 }, "too small"},
		{"no cpus", func(s *Spec) { s.CPUs = 0 }, "too small"},
		{"bad port", func(s *Spec) { s.SSHPort = 70000 }, "ssh port 70000"},
		{"long socket path", func(s *Spec) { s.QMP = "/" + strings.Repeat("x", 120) }, "longer than a unix socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mutate(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	s := validSpec()
	got := strings.Join(s.Args(), " ")
	for _, want := range []string{
		"-machine pc,accel=tcg",
		"-cpu max",
		"-sandbox " + SandboxOpts,
		// the overlay read-write and read-only, the base, the seed
		"-add-fd fd=4,set=1 -add-fd fd=5,set=1 -add-fd fd=6,set=2 -add-fd fd=7,set=3",
		"file=/dev/fdset/1,if=virtio,format=qcow2",
		"backing.driver=qcow2,backing.file.driver=file,backing.file.filename=/dev/fdset/2",
		"file=/dev/fdset/3,if=ide,media=cdrom,readonly=on,format=raw",
		"hostfwd=tcp:127.0.0.1:2222-:22",
		"-chardev socket,id=qmp,fd=3,server=on,wait=off -mon chardev=qmp,mode=control",
		"-serial chardev:console",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	// QEMU opens no path of ours and drops no privileges of its own.
	for _, path := range []string{s.Disk, s.Base, s.Seed, s.QMP, s.PIDFile, "-runas", "-pidfile"} {
		if strings.Contains(got, path) {
			t.Errorf("args name %q:\n%s", path, got)
		}
	}
	// A FAT seed is a disk image: a read-only virtio disk, no CD-ROM.
	s.SeedDisk = true
	got = strings.Join(s.Args(), " ")
	if !strings.Contains(got, "file=/dev/fdset/3,if=virtio,readonly=on,format=raw") || strings.Contains(got, "media=cdrom") {
		t.Errorf("a seed disk is not a read-only virtio disk:\n%s", got)
	}
	s.SeedDisk = false
	if strings.Contains(got, "/dev/fdset/4") {
		t.Errorf("a guest without an agent disk has a fourth file:\n%s", got)
	}
	// The agent disk: one more read-only descriptor and a read-only virtio
	// disk after the seed, so the boot disk and the seed keep their places.
	s.AgentDisk = "/cache/agent-disks/abc.img"
	got = strings.Join(s.Args(), " ")
	for _, want := range []string{
		"-add-fd fd=7,set=3 -add-fd fd=8,set=4",
		"-drive file=/dev/fdset/3,if=ide,media=cdrom,readonly=on,format=raw -drive file=/dev/fdset/4,if=virtio,readonly=on,format=raw",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("a guest with an agent disk: args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, s.AgentDisk) {
		t.Errorf("args name the agent disk's path:\n%s", got)
	}
	if files := s.passed(); files[len(files)-1] != (Passed{Path: s.AgentDisk, Set: setAgent}) {
		t.Errorf("the agent disk is passed as %+v, want read-only in set %d", files[len(files)-1], setAgent)
	}
	s.AgentDisk = ""
	s.Accel, s.BaseFormat = AccelKVM, "raw"
	got = strings.Join(s.Args(), " ")
	for _, want := range []string{"-cpu host", "backing.driver=raw"} {
		if !strings.Contains(got, want) {
			t.Errorf("kvm guest on a raw base: args lack %q:\n%s", want, got)
		}
	}
}

func TestSandboxOptsDenyEverything(t *testing.T) {
	for _, want := range []string{"on", "obsolete=deny", "elevateprivileges=deny", "spawn=deny", "resourcecontrol=deny"} {
		if !slices.Contains(strings.Split(SandboxOpts, ","), want) {
			t.Errorf("-sandbox %s lacks %s", SandboxOpts, want)
		}
	}
}

func TestCommandCredentials(t *testing.T) {
	tests := []struct {
		name     string
		user     *User
		port     int
		wantCred *syscall.Credential
		wantCaps []uintptr
	}{
		{"as the caller", nil, 2222, nil, nil},
		{"as the qemu user, no groups", &User{UID: 64998, GID: 64999}, 2222,
			&syscall.Credential{Uid: 64998, Gid: 64999, Groups: []uint32{}}, nil},
		{"kvm group", &User{UID: 64998, GID: 64999, Groups: []uint32{108}}, 2222,
			&syscall.Credential{Uid: 64998, Gid: 64999, Groups: []uint32{108}}, nil},
		{"a low port", &User{UID: 64998, GID: 64999}, 22,
			&syscall.Credential{Uid: 64998, Gid: 64999, Groups: []uint32{}}, []uintptr{unix.CAP_NET_BIND_SERVICE}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			s.User, s.SSHPort = tt.user, tt.port
			attr := command(s, nil).SysProcAttr
			if !attr.Setsid || attr.Pdeathsig != 0 {
				t.Errorf("a task's qemu must get its own session and outlive the plugin: %+v", attr)
			}
			if !reflect.DeepEqual(attr.Credential, tt.wantCred) {
				t.Errorf("credential = %+v, want %+v", attr.Credential, tt.wantCred)
			}
			if !slices.Equal(attr.AmbientCaps, tt.wantCaps) {
				t.Errorf("ambient caps = %v, want %v", attr.AmbientCaps, tt.wantCaps)
			}
		})
	}
}

func TestPassArgsMatchOpenPassed(t *testing.T) {
	dir := t.TempDir()
	rw, ro := filepath.Join(dir, "rw"), filepath.Join(dir, "ro")
	for _, p := range []string{rw, ro} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := []Passed{{Path: rw, Writable: true, Set: 1}, {Path: ro, Set: 2}}
	got := strings.Join(PassArgs(3, files), " ")
	if want := "-add-fd fd=3,set=1 -add-fd fd=4,set=1 -add-fd fd=5,set=2"; got != want {
		t.Fatalf("PassArgs = %q, want %q", got, want)
	}
	open, err := OpenPassed(files)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseFiles(open)
	var modes []int
	for _, f := range open {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		modes = append(modes, fl&unix.O_ACCMODE)
	}
	if want := []int{unix.O_RDWR, unix.O_RDONLY, unix.O_RDONLY}; !slices.Equal(modes, want) {
		t.Fatalf("access modes %v, want %v", modes, want)
	}
	if _, err := OpenPassed([]Passed{{Path: filepath.Join(dir, "missing"), Set: 1}}); err == nil {
		t.Fatal("OpenPassed of a missing file succeeded")
	}
}

// TestQMPSocketBelongsToTheDriver: the socket is bound here, private, and
// survives this process's copy being closed (QEMU holds the listener).
func TestQMPSocketBelongsToTheDriver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // a stale one
		t.Fatal(err)
	}
	f, err := listenQMP(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Fatalf("qmp socket: %v, %v", st.Mode(), err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the inherited listener does not accept: %v", err)
	}
	c.Close()
}

// TestStartReportsEarlyExit: a QEMU that dies at start-up is reported by
// its exit, not as a QMP error, and leaves no socket behind.
func TestStartReportsEarlyExit(t *testing.T) {
	dir := t.TempDir()
	s := validSpec()
	s.Binary = "false"
	s.Disk, s.Base, s.Seed = filepath.Join(dir, "disk"), filepath.Join(dir, "base"), filepath.Join(dir, "seed")
	s.QMP, s.PIDFile = filepath.Join(dir, "qmp.sock"), filepath.Join(dir, "qemu.pid")
	for _, p := range []string{s.Disk, s.Base, s.Seed} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := Start(ctx, s, Output{Console: os.Stdout, Log: filepath.Join(dir, "qemu.log")})
	if err == nil || !strings.Contains(err.Error(), "qemu exited with code 1 during start-up") {
		t.Fatalf("Start = %v, want the exit reported", err)
	}
	if _, err := os.Stat(s.QMP); !os.IsNotExist(err) {
		t.Errorf("the qmp socket is left behind: %v", err)
	}
}

// TestAgentPortArgs: the agent port's socket is the descriptor after the
// snapshot's, in templates (RAM file) and clones (RAM file and saved state)
// alike, and QEMU connects nothing: it is handed the connected socket.
func TestAgentPortArgs(t *testing.T) {
	s := validSpec()
	if got := strings.Join(s.Args(), " "); strings.Contains(got, "virtserialport") {
		t.Fatalf("a cold guest has an agent port:\n%s", got)
	}
	s.AgentDisk, s.AgentPort = "/cache/agent.img", os.Stdin
	s.RAM = &RAM{Path: "/t/ram", Shared: true}
	template := strings.Join(s.Args(), " ")
	s.RAM.Shared, s.Template, s.Incoming = false, "/t/disk.qcow2", "/t/state"
	clone := strings.Join(s.Args(), " ")
	for _, tc := range []struct {
		name, args string
		fd         int
	}{
		// disk twice, base, seed, agent disk (4-8), RAM file (9)
		{"template", template, 10},
		// and the template's disk (9), RAM file (10), saved state (11)
		{"clone", clone, 12},
	} {
		want := fmt.Sprintf("-device virtio-serial-pci,id=agentbus -chardev socket,id=agentport,fd=%d -device virtserialport,bus=agentbus.0,chardev=agentport,name=org.solstice.agent", tc.fd)
		if !strings.Contains(tc.args, want) {
			t.Errorf("%s: args lack %q:\n%s", tc.name, want, tc.args)
		}
	}
}
