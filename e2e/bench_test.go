//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// BenchmarkDispatchOverhead measures Solstice's whole path, from dispatch
// to the first step starting in the guest, against a bare QEMU boot of the
// same image to an SSH login, side by side in one run, and reports their
// ratio. Both run under TCG on this machine; the ratio is what carries over.
func BenchmarkDispatchOverhead(b *testing.B) {
	var bare, path time.Duration
	n := startBenchNomad(b)
	// One job first, so the image is in the client's cache: the first
	// fetch is a one-off cost, not the path's.
	firstStep(b, n)
	for i := 0; i < b.N; i++ {
		bare += bareBoot(b)
		path += firstStep(b, n)
	}
	b.ReportMetric(bare.Seconds()/float64(b.N), "s/bare_boot_to_ssh")
	b.ReportMetric(path.Seconds()/float64(b.N), "s/dispatch_to_first_step")
	b.ReportMetric(float64(path)/float64(bare), "ratio_path_over_bare")
}

func startBenchNomad(b *testing.B) *Nomad {
	return StartNomad(b, WithPlugin(pluginConfig(b, pluginOpts{})))
}

func bareBoot(b *testing.B) time.Duration {
	img := os.Getenv("SOLSTICE_TEST_IMAGE")
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	overlay := filepath.Join(dir, "disk.qcow2")
	if err := (disk.Tool{}).CreateOverlay(ctx, img, "qcow2", overlay, 0); err != nil {
		b.Fatal(err)
	}
	key, _ := guestssh.NewKey("bench")
	host, _ := guestssh.NewKey("bench host")
	seed := filepath.Join(dir, "seed.iso")
	cloudinit.WriteISO(seed, cloudinit.Seed{InstanceID: "bench", Hostname: "bench",
		Users:   []cloudinit.User{{Name: "solstice", SSHAuthorizedKeys: []string{key.AuthorizedKey}}},
		HostKey: &cloudinit.HostKey{PrivatePEM: string(host.PrivatePEM), Public: host.AuthorizedKey}})
	port, _ := qemu.FreePort("127.0.0.1")
	console, _ := os.Create(filepath.Join(dir, "console.log"))
	defer console.Close()
	start := time.Now()
	inst, q, err := qemu.Start(ctx, qemu.Spec{Binary: "qemu-system-x86_64", Name: "bench", Accel: qemu.AccelTCG,
		MemoryMB: 1024, CPUs: 1, Disk: overlay, Seed: seed, SSHHost: "127.0.0.1", SSHPort: port,
		QMP: filepath.Join(dir, "qmp.sock"), PIDFile: filepath.Join(dir, "pid")},
		qemu.Output{Console: console, Log: filepath.Join(dir, "qemu.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Kill()
	defer q.Close()
	c, err := guestssh.WaitReady(ctx, guestssh.Target{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "solstice", PrivatePEM: key.PrivatePEM, HostKey: host.Public}, 250*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	c.Close()
	return took
}

// firstStep dispatches a one-step job and times it to its step_started.
func firstStep(b *testing.B, n *Nomad) time.Duration {
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "bench", Name: "bench"},
		Steps: []contract.Step{{Name: "First", Run: "true"}}}
	start := time.Now()
	d, job := dispatchPlan(b, n, p, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var st nomad.Status
	for st.AllocID == "" {
		var err error
		if st, err = d.Status(ctx, job); err != nil {
			st = nomad.Status{}
		}
		if ctx.Err() != nil {
			b.Fatal("the job was never placed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var took time.Duration
	err := d.Follow(ctx, st, 0, func(line []byte, _ int64) error {
		ev, err := contract.DecodeEvent(line)
		if err == nil && ev.Type == contract.TypeStepStarted {
			took = time.Since(start)
			return contract.ErrStop
		}
		return nil
	})
	if err != nil || took == 0 {
		b.Fatalf("no step started: %v", err)
	}
	n.waitNoRunningAllocs(2 * time.Minute)
	d.Finish(ctx, job)
	return took
}
