package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
