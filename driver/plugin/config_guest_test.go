package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestImageGuest(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ImageConfig)
		want   contract.GuestOS
	}{
		{"illumos defaults", func(*ImageConfig) {},
			contract.GuestOS{PathPrepend: []string{"/usr/gnu/bin"}, PowerOff: "/usr/sbin/poweroff"}},
		{"linux defaults", func(i *ImageConfig) { i.OS = "linux" }, contract.GuestOS{PowerOff: "poweroff"}},
		{"openbsd defaults", func(i *ImageConfig) { i.OS = "openbsd" },
			contract.GuestOS{DefaultShell: "sh", PowerOff: "shutdown -hp now"}},
		{"every override", func(i *ImageConfig) {
			i.PathPrepend = []string{"/opt/ooce/bin", "/usr/gnu/bin"}
			i.DefaultShell, i.WorkRoot, i.PowerOff = "bash", "/export/ci", "shutdown -y -i5 -g0"
		}, contract.GuestOS{PathPrepend: []string{"/opt/ooce/bin", "/usr/gnu/bin"}, DefaultShell: "bash",
			WorkRoot: "/export/ci", PowerOff: "shutdown -y -i5 -g0"}},
		{"empty path_prepend drops the default", func(i *ImageConfig) { i.PathPrepend = []string{} },
			contract.GuestOS{PathPrepend: []string{}, PowerOff: "/usr/sbin/poweroff"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := goodImage()
			tc.mutate(img)
			if got := img.Guest(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Guest() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPlanCarriesImageGuestSettings: the plan uploaded to the guest holds
// the image's guest settings, whatever the task's plan said.
func TestPlanCarriesImageGuestSettings(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	h.d.cfg().Images["omnios"].WorkRoot = "/export/ci"
	got, err := uploadedGuest(t, h, vms, `{"version":1,"job":{"id":"j"},"steps":[{"run":"true"}],"guest":{"shell":"sh"}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &contract.GuestSettings{PathPrepend: []string{"/usr/gnu/bin"}, WorkRoot: "/export/ci"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("uploaded guest settings %+v, want %+v", got, want)
	}
}

// TestPlanGuestSettingsOnlyFromCatalog: for an image with no guest
// settings, guest settings a plan brought are dropped, not obeyed.
func TestPlanGuestSettingsOnlyFromCatalog(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	img := h.d.cfg().Images["omnios"]
	img.PathPrepend = []string{} // illumos without /usr/gnu/bin: no settings
	got, err := uploadedGuest(t, h, vms, `{"version":1,"job":{"id":"j"},"steps":[{"run":"true"}],"guest":{"work_root":"/etc"}}`)
	if err != nil || got != nil {
		t.Errorf("uploaded guest settings %+v (%v), want none", got, err)
	}
}

// uploadedGuest starts an omnios task with plan and returns the guest
// settings of the plan the driver uploaded.
func uploadedGuest(t *testing.T, h *harness, vms *fakeVMs, plan string) (*contract.GuestSettings, error) {
	t.Helper()
	cfg := h.taskConfig(TaskConfig{Image: "omnios", Plan: "local/plan.json"})
	if err := os.WriteFile(filepath.Join(cfg.TaskDir().Dir, "local/plan.json"), []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.d.StartTask(cfg); err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	vms.waitForCall(t, "launch")
	data, err := os.ReadFile(vms.launched[0].Plan)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Guest *contract.GuestSettings }
	err = json.Unmarshal(data, &got)
	return got.Guest, err
}
