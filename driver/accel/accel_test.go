package accel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
// under TCG, its silence under KVM would prove nothing.
func TestCanaryRunsUnderTCG(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := RunCanary(ctx, "qemu-system-x86_64", TCG, t.TempDir(), 30*time.Second); err != nil {
		t.Fatal(err)
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
