package plugin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/accel"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/qemuuser"
)

// TestStartTaskRunsQEMUAsItsUser: the spec the provider gets names the qemu
// account in the isolation group, with no supplementary groups, and the
// base QEMU is handed as the overlay's backing file.
func TestStartTaskRunsQEMUAsItsUser(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	h.start(TaskConfig{Image: "omnios"})
	if len(vms.specs) != 1 {
		t.Fatalf("%d qemu starts, want 1", len(vms.specs))
	}
	spec := vms.specs[0]
	if want := (&qemu.User{UID: 64998, GID: 64999}); !reflect.DeepEqual(spec.User, want) {
		t.Errorf("qemu runs as %+v, want %+v", spec.User, want)
	}
	if spec.Base != "/cache/omnios.qcow2" || spec.BaseFormat != "qcow2" {
		t.Errorf("qemu's base is %q (%s), want the cached image", spec.Base, spec.BaseFormat)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("the driver's spec does not validate: %v", err)
	}
}

// TestStartTaskNeedsTheQEMUUser: without its account QEMU does not start,
// neither as root nor as anybody else, and the task says why.
func TestStartTaskNeedsTheQEMUUser(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"useradd failed", errors.New("cannot run QEMU unprivileged: useradd: cannot lock /etc/passwd"), "cannot lock /etc/passwd"},
		{"not set up", nil, errNoQEMUUser.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vms := &fakeVMs{}
			h := newHarness(t, vms)
			h.d.setQEMUAccount(qemuuser.Account{}, tt.err)
			_, _, err := h.d.StartTask(h.taskConfig(TaskConfig{Image: "omnios"}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("StartTask = %v, want %q", err, tt.want)
			}
			assertCalls(t, vms, nil, []string{"start"})
		})
	}
}

func TestQEMUUserUnderKVM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	d := New(hclog.NewNullLogger())
	defer d.Shutdown()
	d.setQEMUAccount(testQEMUAccount, nil)
	u, err := d.qemuUser(accel.TCG)
	if err != nil || len(u.Groups) != 0 {
		t.Fatalf("under tcg qemu runs as %+v, %v; want no supplementary groups", u, err)
	}
	dev := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode os.FileMode
		gid  int
		want []uint32
	}{
		{0o660, 108, []uint32{108}}, // Debian's kvm group
		{0o600, 108, nil},           // the group may not open it
		{0o666, 0, nil},             // root's group is never given
	} {
		if err := os.Chmod(dev, tt.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dev, 0, tt.gid); err != nil {
			t.Fatal(err)
		}
		if got := deviceGroup(dev); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("device %o group %d: groups %v, want %v", tt.mode, tt.gid, got, tt.want)
		}
	}
}

// TestVMDirIsClosedToQEMU starts a task and then tries, as the qemu
// account, to read what the VM dir holds. The dirs above it are opened up
// first, so the VM dir is the only thing in the way; a file beside it
// shows the account could otherwise read.
func TestVMDirIsClosedToQEMU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg, th := h.start(TaskConfig{Image: "omnios"})
	st := driverState(t, th)
	for dir := filepath.Dir(st.VMDir); dir != "/"; dir = filepath.Dir(dir) {
		if strings.HasPrefix(dir, os.TempDir()+"/") {
			os.Chmod(dir, 0o755)
		}
	}
	beside := filepath.Join(cfg.TaskDir().Dir, "beside")
	if err := os.WriteFile(beside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := readAsQEMU(beside); err != nil {
		t.Fatalf("the qemu account cannot read a world-readable file beside the VM dir, so this test proves nothing: %v", err)
	}
	if fi, err := os.Stat(st.VMDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("vm dir mode %v, %v; want 0700", fi.Mode(), err)
	}
	for _, p := range []string{st.Overlay, st.Seed} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", filepath.Base(p), fi.Mode(), err)
		}
		if err := readAsQEMU(p); err == nil {
			t.Errorf("the qemu account can read %s", p)
		}
	}
}

// readAsQEMU reads a file as the harness's qemu account.
func readAsQEMU(path string) error {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(testQEMUAccount.UID), Gid: uint32(testQEMUAccount.GID), Groups: []uint32{},
	}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}
