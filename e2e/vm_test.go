//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// sharedCache is one image cache for the whole e2e run, as on a real client
// where every task reuses the same cached base.
var (
	sharedCacheOnce sync.Once
	sharedCacheDir  string
)

// TestMain removes the shared image cache after the run: each run makes
// its own, and a copy of the image per run would fill /tmp.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCacheDir != "" {
		os.RemoveAll(sharedCacheDir)
	}
	os.Exit(code)
}

func imageCacheDir(t testing.TB) string {
	sharedCacheOnce.Do(func() {
		dir, err := os.MkdirTemp("", "solstice-e2e-cache-")
		if err != nil {
			t.Fatal(err)
		}
		sharedCacheDir = dir
	})
	return sharedCacheDir
}

// testImage returns the test image's path and sha256.
func testImage(t testing.TB) (string, string) {
	path := env(t, "SOLSTICE_TEST_IMAGE")
	data, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatalf("test image checksum: %v", err)
	}
	return path, strings.Fields(string(data))[0]
}

type pluginOpts struct {
	accelerator string
	qemu        string
	extra       string   // more HCL inside config { }
	egressAllow []string // egress_allow entries besides giteaNet
	// templateDir turns warm starts on with templates kept there; tests
	// boot cold otherwise, so no template build competes for the CPU.
	templateDir string
}

// giteaNet holds the test forges (StartGitea). They stand for an
// operator's internal forge, which guests reach only because the
// operator allow-lists it, so every test client does.
const giteaNet = "10.210.0.0/16"

// pluginConfig is the client's solstice-vm block with the test image in its
// catalog as "solstice-test".
func pluginConfig(t testing.TB, o pluginOpts) string {
	img, sum := testImage(t)
	if o.accelerator == "" {
		o.accelerator = "tcg"
	}
	qemu := ""
	if o.qemu != "" {
		qemu = fmt.Sprintf("qemu_binary = %q", o.qemu)
	}
	allow, _ := json.Marshal(append([]string{giteaNet}, o.egressAllow...))
	warm := "warm_starts  = false"
	if o.templateDir != "" {
		warm = fmt.Sprintf("template_dir = %q", o.templateDir)
	}
	return fmt.Sprintf(`
    cache_dir    = %q
    accelerator  = %q
    egress_allow = %s
    %s
    %s
    image "solstice-test" {
      source  = %q
      sha256  = %q
      format  = "qcow2"
      os      = "linux"
      user    = "solstice"
      aliases = ["debian-test"]
    }
%s`, imageCacheDir(t), o.accelerator, allow, warm, qemu, "file://"+img, sum, o.extra)
}

// emptyCachePlugin is a client config with the test image as
// "solstice-test" from source and a cache_dir of its own, for tests that
// watch the image arrive in an empty cache.
func emptyCachePlugin(cache, source, sum string) string {
	return fmt.Sprintf(`
    cache_dir   = %q
    accelerator = "tcg"
    warm_starts = false
    image "solstice-test" {
      source  = %q
      sha256  = %q
      format  = "qcow2"
      os      = "linux"
      user    = "solstice"
      aliases = ["debian-test"]
    }`, cache, source, sum)
}

// vmJob is a batch job with one solstice-vm task called "vm".
func vmJob(name, taskConfig string) string {
	return fmt.Sprintf(`
job %q {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "vm" {
      driver       = "solstice-vm"
      kill_timeout = "60s"
      config {
        image = "solstice-test"
        %s
      }
      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}`, name, taskConfig)
}

func (n *Nomad) waitRunning(jobID string) *api.Allocation {
	return n.WaitAlloc(jobID, 4*time.Minute, "running", func(a *api.Allocation) bool {
		st := a.TaskStates["vm"]
		if a.ClientStatus == api.AllocClientStatusFailed || a.ClientStatus == api.AllocClientStatusComplete {
			n.t.Fatalf("alloc ended before running: %s", describe(a))
		}
		return st != nil && st.State == "running"
	})
}

// nomadCLI runs the real nomad command against the agent.
func (n *Nomad) nomadCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env(n.t, "SOLSTICE_NOMAD"), args...)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+n.Addr, "NOMAD_TOKEN="+n.Token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// vmDir is where the driver keeps a task's overlay, seed and QEMU log.
func (n *Nomad) vmDir(alloc *api.Allocation) string {
	return filepath.Join(n.DataDir(), "alloc", alloc.ID, "vm", "solstice-vm")
}

func qemuPID(t *testing.T, vmDir string) int {
	data, err := os.ReadFile(filepath.Join(vmDir, "qemu.pid"))
	if err != nil {
		t.Fatalf("qemu pidfile: %v", err)
	}
	var pid int
	fmt.Sscan(string(data), &pid)
	return pid
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(data), ") Z ")
}

func sha256File(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestVMLifecycle: boot, console in alloc logs, exec into the guest, and a
// stop that powers the guest off and leaves nothing behind.
func TestVMLifecycle(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("lifecycle", ""))
	alloc := n.waitRunning("lifecycle")
	dir := n.vmDir(alloc)
	pid := qemuPID(t, dir)

	logs := n.Logs(alloc, "vm", "stdout")
	if !strings.Contains(logs, "Linux version") {
		t.Fatalf("alloc logs do not show the guest console:\n%s", tail(logs, 40))
	}
	out, err := n.nomadCLI("alloc", "exec", "-task", "vm", "-i=false", "-t=false", alloc.ID, "uname", "-a")
	if err != nil || !strings.Contains(out, "Linux") {
		t.Fatalf("nomad alloc exec uname: %v\n%s", err, out)
	}
	out, err = n.nomadCLI("alloc", "exec", "-task", "vm", "-i=false", "-t=false", alloc.ID, "/bin/sh", "-c", "exit 7")
	if code := exitCode(err); code != 7 {
		t.Fatalf("exit code through alloc exec = %d (%v), want 7\n%s", code, err, out)
	}

	if out, err := n.nomadCLI("alloc", "stop", "-detach", alloc.ID); err != nil {
		t.Fatalf("nomad alloc stop: %v\n%s", err, out)
	}
	waitFor(t, 90*time.Second, "qemu to exit", func() bool { return !alive(pid) })
	var final *api.Allocation
	waitFor(t, time.Minute, "the task to be dead", func() bool {
		final, _, _ = n.API.Allocations().Info(alloc.ID, nil)
		return final != nil && final.TaskStates["vm"].State == "dead"
	})
	console := n.Logs(final, "vm", "stdout")
	if !strings.Contains(console, "reboot: Power down") {
		t.Fatalf("the console does not show an ACPI power-down:\n%s", tail(console, 30))
	}
	waitFor(t, 30*time.Second, "the vm dir to be removed", func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
