//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// cloudInitImage returns the cloud-init flavour's path and sha256
// (testimage/build.sh OUTDIR cloudinit; make cloudinit-image).
func cloudInitImage(t testing.TB) (string, string) {
	path := env(t, "SOLSTICE_CLOUDINIT_IMAGE")
	data, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatalf("cloud-init image checksum: %v", err)
	}
	return path, strings.Fields(string(data))[0]
}

// cloudInitCatalog is the catalog entry of the cloud-init flavour under
// label, reading the seed format given.
func cloudInitCatalog(t testing.TB, label, seedFormat string) string {
	img, sum := cloudInitImage(t)
	return fmt.Sprintf(`
    image %q {
      source      = %q
      sha256      = %q
      format      = "qcow2"
      os          = "linux"
      user        = "solstice"
      seed_format = %q
    }
`, label, "file://"+img, sum, seedFormat)
}

// planJob is a batch job whose one task runs plan in a guest of image:
// the plan comes in through a template, as a dispatch payload would.
func planJob(t *testing.T, name, image string, p *contract.Plan) string {
	var plan bytes.Buffer
	if err := contract.EncodePlan(&plan, p); err != nil {
		t.Fatal(err)
	}
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
    task %q {
      driver       = "solstice-vm"
      kill_timeout = "60s"
      template {
        destination     = "local/plan.json"
        left_delimiter  = "[[%%"
        right_delimiter = "%%]]"
        data            = %q
      }
      config {
        image = %q
        plan  = "local/plan.json"
      }
      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}`, name, contract.TaskName, plan.String(), image)
}

// waitJobDone waits for the job's task to be dead and returns its events.
func (n *Nomad) waitJobDone(t *testing.T, jobID string, limit time.Duration) (*api.Allocation, []contract.Event) {
	t.Helper()
	alloc := n.WaitAlloc(jobID, limit, "finished", func(a *api.Allocation) bool {
		st := a.TaskStates[contract.TaskName]
		return st != nil && st.State == "dead"
	})
	return alloc, readEvents(t, n, alloc)
}

// stepLines is what a step printed to stdout, in order.
func stepLines(evs []contract.Event, step string) []string {
	index := -1
	var lines []string
	for _, ev := range evs {
		switch {
		case ev.Type == contract.TypeStepStarted && ev.Name == step:
			index = ev.Step
		case ev.Type == contract.TypeLog && ev.Step == index && index >= 0 && ev.Stream == contract.Stdout && ev.Kind == "":
			lines = append(lines, ev.Line)
		}
	}
	return lines
}

func jobConclusion(evs []contract.Event) string {
	for _, ev := range evs {
		if ev.Type == contract.TypeJobFinished {
			return ev.Conclusion
		}
	}
	return ""
}

// cloudInitPlan reads back, from inside the guest, what real cloud-init
// made of the driver's seed: the datasource line of its log, the hostname,
// the user the job runs as and its sudo rights. The host key needs no
// step: the driver's logins insist on the seed's ssh_keys, so a job that
// ran at all is a guest that installed it.
func cloudInitPlan(id string) *contract.Plan {
	return &contract.Plan{
		Version: contract.PlanVersion,
		Job:     contract.Job{ID: id, Name: id},
		Steps: []contract.Step{
			{Name: "Datasource", Run: "sudo -n grep -o 'Loaded datasource .*' /var/log/cloud-init.log"},
			{Name: "Who", Run: "echo \"host=$(hostname) user=$(id -un) root=$(sudo -n id -u)\""},
		},
	}
}

// TestCloudInitReadsTheSeed boots the test image's cloud-init flavour,
// whose seed is read by Debian's real cloud-init, from each seed format
// the driver writes, and runs a job in each guest. One Nomad agent serves
// both.
func TestCloudInitReadsTheSeed(t *testing.T) {
	extra := cloudInitCatalog(t, "cloudinit-iso", "nocloud") + cloudInitCatalog(t, "cloudinit-fat", "nocloud-fat")
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: extra})))
	for _, tc := range []struct {
		name, image string
		seed        string // the seed device cloud-init names
	}{
		// ISO 9660 on the IDE CD-ROM; FAT on a read-only virtio disk
		// (the guest's second, after its root disk).
		{"nocloud", "cloudinit-iso", "/dev/sr0"},
		{"nocloud-fat", "cloudinit-fat", "/dev/vdb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			n.RunJob(planJob(t, "ci-"+tc.name, tc.image, cloudInitPlan("ci-"+tc.name)))
			alloc, evs := n.waitJobDone(t, "ci-"+tc.name, 5*time.Minute)
			t.Logf("%s: job done %s after submission", tc.name, time.Since(start).Round(time.Second))
			if c := jobConclusion(evs); c != "success" {
				dumpEvents(t, evs)
				t.Fatalf("job conclusion %q, want success\n%s", c, tail(n.Logs(alloc, contract.TaskName, "stdout"), 40))
			}
			ds := strings.Join(stepLines(evs, "Datasource"), "\n")
			want := "Loaded datasource DataSourceNoCloudNet - DataSourceNoCloudNet [seed=" + tc.seed + "][dsmode=net]"
			if ds != want {
				t.Errorf("cloud-init's datasource line:\n%s\nwant:\n%s", ds, want)
			}
			// The seed's hostname (the task name and the alloc's
			// prefix), its user with passwordless sudo.
			who := strings.Join(stepLines(evs, "Who"), "\n")
			if want := fmt.Sprintf("host=job-%s user=solstice root=0", alloc.ID[:8]); who != want {
				t.Errorf("in the guest: %q, want %q", who, want)
			}
		})
	}
}

var acpidGone = regexp.MustCompile(`(?m)^acpid gone$`)

// TestPrivilegedStepAndPowerOffWithoutACPI: a step gets root through sudo
// without a password, and a guest whose power button does nothing (its
// ACPI daemon killed by a step) still stops within 15 s of `nomad alloc
// stop`, through the OS's power-off command.
func TestPrivilegedStepAndPowerOffWithoutACPI(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	p := &contract.Plan{
		Version: contract.PlanVersion,
		Job:     contract.Job{ID: "no-acpi", Name: "no-acpi"},
		Steps: []contract.Step{
			{Name: "Root", Run: "sudo id -u"},
			{Name: "Deaf", Run: "sudo kill $(cat /run/acpid.pid)\nwhile pgrep -x acpid >/dev/null; do sleep 0.2; done\necho acpid gone\nsleep 600"},
		},
	}
	_, job := dispatchPlan(t, n, p, nil)
	alloc := n.WaitAlloc(job.ID, 4*time.Minute, "the power button disabled", func(a *api.Allocation) bool {
		st := a.TaskStates[contract.TaskName]
		if st != nil && st.State == "dead" {
			t.Fatalf("the job ended early: %s", describe(a))
		}
		return st != nil && st.State == "running" && acpidGone.MatchString(n.Logs(a, contract.TaskName, "stdout"))
	})
	evs := readEvents(t, n, alloc)
	if got := stepLines(evs, "Root"); len(got) != 1 || got[0] != "0" {
		dumpEvents(t, evs)
		t.Fatalf("sudo id -u printed %q, want 0", got)
	}
	pid := qemuPID(t, filepath.Join(n.DataDir(), "alloc", alloc.ID, contract.TaskName, "solstice-vm"))
	start := time.Now()
	if out, err := n.nomadCLI("alloc", "stop", "-detach", alloc.ID); err != nil {
		t.Fatalf("nomad alloc stop: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, "qemu to exit", func() bool { return !alive(pid) })
	took := time.Since(start)
	t.Logf("QEMU exited %s after nomad alloc stop", took.Round(100*time.Millisecond))
	var final *api.Allocation
	waitFor(t, time.Minute, "the task to be dead", func() bool {
		final, _, _ = n.API.Allocations().Info(alloc.ID, nil)
		return final != nil && final.TaskStates[contract.TaskName].State == "dead"
	})
	console := n.Logs(final, contract.TaskName, "stdout")
	// The guest went down by its own poweroff (busybox init's shutdown),
	// not by the power button (which acpid would have announced).
	if strings.Contains(console, "solstice-test: power button") || !strings.Contains(console, "solstice-test: stopping services") ||
		!strings.Contains(console, "reboot: Power down") {
		t.Errorf("the console does not show a poweroff without the power button:\n%s", tail(console, 30))
	}
	if took > 15*time.Second {
		t.Fatalf("QEMU exited %s after nomad alloc stop, want within 15s", took)
	}
}
