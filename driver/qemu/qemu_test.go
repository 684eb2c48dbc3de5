package qemu

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
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
		Disk: "/d/disk.qcow2", Seed: "/d/seed.iso", SSHHost: "127.0.0.1", SSHPort: 2222,
		QMP: "/d/qmp.sock", PIDFile: "/d/qemu.pid",
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"valid", func(*Spec) {}, ""},
		{"missing paths", func(s *Spec) { s.Disk, s.Seed = "", "" }, "missing disk, seed"},
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
	s.Disk = "/d/a,b.qcow2"
	got := strings.Join(s.Args(), " ")
	for _, want := range []string{
		"-machine pc,accel=tcg",
		"-cpu max",
		"file=/d/a,,b.qcow2,if=virtio,format=qcow2", // commas escaped
		"file=/d/seed.iso,if=ide,media=cdrom,readonly=on",
		"hostfwd=tcp:127.0.0.1:2222-:22",
		"-qmp unix:/d/qmp.sock,server=on,wait=off",
		"-serial chardev:console",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	s.Accel = AccelKVM
	if got := strings.Join(s.Args(), " "); !strings.Contains(got, "-cpu host") {
		t.Errorf("kvm guests should get the host cpu:\n%s", got)
	}
}
