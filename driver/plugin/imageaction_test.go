package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/image"
)

func TestCheckAction(t *testing.T) {
	for _, tt := range []struct {
		action string
		ok     bool
	}{
		{"", true}, {"run", true}, {"pull", true}, {"verify", true},
		{"fetch", false}, {"PULL", false}, {" run", false},
	} {
		err := (&TaskConfig{Image: "x", BootTimeout: "5m", Action: tt.action}).settingsErr()
		if tt.ok != (err == nil) {
			t.Errorf("action %q: settings() = %v, want ok %v", tt.action, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), `action = "`+tt.action+`": must be "run"`) {
			t.Errorf("action %q: the error does not name the field and its values: %v", tt.action, err)
		}
	}
}

func (tc *TaskConfig) settingsErr() error {
	_, err := tc.settings(DefaultConfig())
	return err
}

// TestImagePull: a pull task fetches the image through the start path's
// fetch, boots nothing and exits 0 at once.
func TestImagePull(t *testing.T) {
	vms := &fakeVMs{}
	h := newHarness(t, vms)
	cfg, _ := h.start(TaskConfig{Image: "omnios", Action: "pull"})
	assertCalls(t, vms, []string{"image omnios"}, []string{"create-disk", "start", "wait-ready"})
	h.waitForEvents("Fetching image", MsgImageCached)
	if res := h.wait(cfg.ID); res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("pull task exit = %+v, want 0", res)
	}
	st, err := h.d.InspectTask(cfg.ID)
	if err != nil || st.State != drivers.TaskStateExited {
		t.Fatalf("InspectTask = %+v, %v; want exited", st, err)
	}
	if err := h.d.StopTask(cfg.ID, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.d.DestroyTask(cfg.ID, false); err != nil {
		t.Fatal(err)
	}
}

// TestImagePullFails: a failed fetch is the start's error.
func TestImagePullFails(t *testing.T) {
	vms := &fakeVMs{imageErr: os.ErrNotExist}
	h := newHarness(t, vms)
	_, _, err := h.d.StartTask(h.taskConfig(TaskConfig{Image: "omnios", Action: "pull"}))
	if err == nil || !strings.Contains(err.Error(), "image pull omnios") {
		t.Fatalf("StartTask = %v, want the fetch's failure", err)
	}
}

// TestImageVerify runs verify on a real cache: not cached, intact, and
// corrupt (removed, the error names the path and both checksums).
func TestImageVerify(t *testing.T) {
	h := newHarness(t, &fakeVMs{})
	data := []byte("a disk image")
	src := filepath.Join(t.TempDir(), "real.qcow2")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	want := hex.EncodeToString(s[:])
	conf := h.d.cfg()
	conf.Images["real"] = &ImageConfig{Source: "file://" + src, SHA256: want, Format: "qcow2", Compression: "none", OS: "illumos", User: "solstice"}
	cache := &image.Cache{Dir: filepath.Join(conf.CacheDir, "bases"), Log: hclog.NewNullLogger()}
	h.d.configure(conf, cache, h.vms)
	if err := os.MkdirAll(cache.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache.Dir, want+".qcow2")

	verify := func() (*drivers.TaskConfig, error) {
		cfg := h.taskConfig(TaskConfig{Image: "real", Action: "verify"})
		_, _, err := h.d.StartTask(cfg)
		if err == nil {
			if res := h.wait(cfg.ID); res.ExitCode != 0 {
				t.Fatalf("verify exit = %+v", res)
			}
			h.d.DestroyTask(cfg.ID, true)
		}
		return cfg, err
	}
	if _, err := verify(); err != nil {
		t.Fatal(err)
	}
	h.waitForEvents(MsgImageNotCached)

	if err := os.WriteFile(cached, data, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(); err != nil {
		t.Fatal(err)
	}
	h.waitForEvents(MsgImageNotCached, MsgImageVerified)

	os.Chmod(cached, 0o644)
	if err := os.WriteFile(cached, []byte("a disk imagf"), 0o444); err != nil {
		t.Fatal(err)
	}
	_, err := verify()
	if err == nil || !strings.Contains(err.Error(), cached) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "has sha256 ") {
		t.Fatalf("verify of a corrupt image = %v, want the path and both checksums", err)
	}
	if exists(cached) {
		t.Fatal("the corrupt image is still in the cache")
	}
}
