package accel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/qemu"
)

// TestCanaryMatchesSource reassembles canary.S so the embedded bytes can
// never drift from the source that explains them.
func TestCanaryMatchesSource(t *testing.T) {
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "c.o"), filepath.Join(dir, "c.bin")
	if out, err := exec.Command("as", "--64", "-o", obj, "canary.S").CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command("objcopy", "-O", "binary", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(bin)
	if !bytes.Equal(got, canary) {
		t.Fatal("canary.bin differs from canary.S: rebuild it (see the header of canary.S)")
	}
	if len(canary) != 512 || canary[510] != 0x55 || canary[511] != 0xaa {
		t.Fatal("canary.bin is not a 512-byte boot sector")
	}
}

// TestCanaryRunsUnderTCG runs the canary in real QEMU: if it did not work
// under TCG, its silence under KVM would prove nothing. It runs as the
// driver runs it: sandboxed, as an unprivileged user when this is root,
// with its files in a dir that user cannot enter.
func TestCanaryRunsUnderTCG(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := Canary{QemuBinary: "qemu-system-x86_64", Accel: TCG, WorkDir: t.TempDir(), Limit: 30 * time.Second}
	if os.Geteuid() == 0 {
		c.User = &qemu.User{UID: 64998, GID: 64999}
	}
	if err := RunCanary(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func TestCanaryCommandIsConfined(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "canary.img")
	if err := os.WriteFile(disk, canary, 0o600); err != nil {
		t.Fatal(err)
	}
	c := Canary{QemuBinary: "qemu-system-x86_64", Accel: KVM, User: &qemu.User{UID: 64998, GID: 64999}}
	cmd, held, err := canaryCommand(context.Background(), c, disk, filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	qemu.CloseFiles(held)
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"-sandbox " + qemu.SandboxOpts, "-add-fd fd=3,set=1 -add-fd fd=4,set=1", "file=/dev/fdset/1,format=raw"} {
		if !strings.Contains(args, want) {
			t.Errorf("canary args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, dir) {
		t.Errorf("the canary opens a path of ours:\n%s", args)
	}
	if cr := cmd.SysProcAttr.Credential; cr == nil || cr.Uid != 64998 || cr.Gid != 64999 || cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Errorf("canary process attributes %+v", cmd.SysProcAttr)
	}
}

func TestProbe(t *testing.T) {
	noDevice := filepath.Join(t.TempDir(), "kvm")
	failingBoot := func(context.Context, string) error { return errors.New("no ssh login within 1m0s") }
	type probeCase struct {
		name       string
		opts       Options
		wantAccel  string
		wantErr    bool
		wantReason string
	}
	tests := []probeCase{
		{"tcg by config", Options{Mode: TCG}, TCG, false, "in the plugin config"},
		{"auto without a device", Options{Mode: "auto", Device: noDevice}, TCG, false, "open " + noDevice},
		{"kvm demanded without a device", Options{Mode: KVM, Device: noDevice}, "", true, ""},
	}
	if CheckDevice("/dev/kvm") == nil {
		// Where KVM guests hang, either the canary or the real guest gives it
		// away first (which one depends on the host and its load); both must
		// end in TCG with the KVM failure as the reason.
		tests = append(tests, probeCase{"auto with a guest that hangs", Options{Mode: "auto", Device: "/dev/kvm", QemuBinary: "qemu-system-x86_64", WorkDir: t.TempDir(), Boot: failingBoot}, TCG, false, "falling back to tcg: kvm"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Probe(context.Background(), tt.opts)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Probe() = %+v, want an error", res)
				}
				return
			}
			if err != nil || res.Name != tt.wantAccel || !strings.Contains(res.Reason, tt.wantReason) {
				t.Fatalf("Probe() = %+v, %v; want %s because %q", res, err, tt.wantAccel, tt.wantReason)
			}
		})
	}
}
