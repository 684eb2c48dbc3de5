//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
)

// BenchmarkWarmPath measures dispatch → first step through Nomad and the
// driver, cold (warm_starts = false) and warm (from the template the first
// warm-side job's cold start had built), side by side in one run: two
// agents, samples interleaved (cold, warm, cold, …) so that load on the
// host falls on both alike. It prints each side's phases and reports the
// medians and warm ÷ cold. SOLSTICE_BENCH_SAMPLES sets the samples per
// side (default and minimum 5).
func BenchmarkWarmPath(b *testing.B) {
	samples := benchSamples(b)
	tplDir := b.TempDir()
	cold := StartNomad(b, WithPlugin(pluginConfig(b, pluginOpts{})))
	warm := StartNomad(b, WithPlugin(pluginConfig(b, pluginOpts{templateDir: tplDir})))
	firstStep(b, cold) // the image into the cache
	firstStep(b, warm) // cold; it starts the template's build
	waitTemplate(b, tplDir, 10*time.Minute)
	var c, w []coldSample
	for i := 0; i < samples; i++ {
		c = append(c, firstStep(b, cold))
		w = append(w, firstStep(b, warm))
		if !strings.Contains(w[i].booting, "restored from template") {
			b.Fatalf("warm sample %d did not start from the template: %s", i+1, w[i].booting)
		}
		fmt.Printf("sample %d: cold %s, warm %s (%s)\n", i+1, secs(c[i].total), secs(w[i].total), w[i].up)
	}
	fmt.Printf("last warm sample's task events (s from the dispatch): %s\n", w[len(w)-1].timeline)
	rows := append(phaseRows("cold", c), phaseRows("warm", w)...)
	printBenchTable(os.Stdout, samples, rows)
	for _, r := range rows {
		b.ReportMetric(median(r.values).Seconds(), "s/"+r.metric)
	}
	ratio := float64(median(rowValues(rows, "warm"))) / float64(median(rowValues(rows, "cold")))
	fmt.Printf("warm/cold (medians): %.2f\n", ratio)
	b.ReportMetric(ratio, "warm/cold")
}

// phaseRows are one side's rows of the table, named by side.
func phaseRows(side string, samples []coldSample) []benchRow {
	pick := func(f func(coldSample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, s := range samples {
			out = append(out, f(s))
		}
		return out
	}
	return []benchRow{
		{side + ": dispatch → placement", side + "_placement", pick(func(s coldSample) time.Duration { return s.placement })},
		{side + ": placement → QEMU started", side + "_prepare", pick(func(s coldSample) time.Duration { return s.prepare })},
		{side + ": QEMU → SSH login", side + "_boot", pick(func(s coldSample) time.Duration { return s.boot })},
		{side + ": SSH → agent running", side + "_launch", pick(func(s coldSample) time.Duration { return s.launch })},
		{side + ": agent → first step", side + "_step", pick(func(s coldSample) time.Duration { return s.step })},
		{side + ": dispatch → first step", side, pick(func(s coldSample) time.Duration { return s.total })},
	}
}

// BenchmarkWarmRestore measures, with QEMU alone, a clone's restore (QEMU
// start → the template's state loaded and the guest's sshd answering) for
// a 512 MiB and a 2 GiB template, and the memory two warm clones use
// against two cold VMs (summed RSS and PSS from /proc/PID/smaps_rollup).
func BenchmarkWarmRestore(b *testing.B) {
	small := newBenchTemplate(b, 512)
	large := newBenchTemplate(b, 2048)
	var rs, rl time.Duration
	for i := 0; i < b.N; i++ {
		rs += small.restore(b, nil)
		rl += large.restore(b, nil)
	}
	b.ReportMetric(rs.Seconds()/float64(b.N), "s/restore_512MiB")
	b.ReportMetric(rl.Seconds()/float64(b.N), "s/restore_2GiB")
	b.ReportMetric(float64(rl)/float64(rs), "ratio_restore_2GiB_over_512MiB")

	warm := small.pair(b, true)
	cold := small.pair(b, false)
	b.ReportMetric(float64(warm.rss)/(1<<20), "MiB/rss_two_warm")
	b.ReportMetric(float64(cold.rss)/(1<<20), "MiB/rss_two_cold")
	b.ReportMetric(float64(warm.pss)/(1<<20), "MiB/pss_two_warm")
	b.ReportMetric(float64(cold.pss)/(1<<20), "MiB/pss_two_cold")
}

// benchTemplate is a saved template VM made as the driver makes one.
type benchTemplate struct {
	dir      string
	memMB    int
	key      guestssh.Key
	host     guestssh.Key
	seed     string
	saveTook time.Duration
}

func benchSpec(dir, name string, memMB int, disk, seed string) qemu.Spec {
	port, _ := qemu.FreePort("127.0.0.1")
	return qemu.Spec{Binary: "qemu-system-x86_64", Name: name, Accel: qemu.AccelTCG,
		MemoryMB: memMB, CPUs: 1, Disk: disk, Base: os.Getenv("SOLSTICE_TEST_IMAGE"), BaseFormat: "qcow2",
		Seed: seed, SSHHost: "127.0.0.1", SSHPort: port,
		QMP: filepath.Join(dir, name+".qmp"), PIDFile: filepath.Join(dir, name+".pid")}
}

func newBenchTemplate(b *testing.B, memMB int) *benchTemplate {
	t := &benchTemplate{dir: b.TempDir(), memMB: memMB}
	t.key, _ = guestssh.NewKey("bench")
	t.host, _ = guestssh.NewKey("bench host")
	t.seed = filepath.Join(t.dir, "seed.iso")
	err := cloudinit.WriteISO(t.seed, cloudinit.Seed{InstanceID: "bench", Hostname: "bench",
		Users:   []cloudinit.User{{Name: "solstice", Sudo: cloudinit.PasswordlessSudo, SSHAuthorizedKeys: []string{t.key.AuthorizedKey}}},
		HostKey: &cloudinit.HostKey{PrivatePEM: string(t.host.PrivatePEM), Public: t.host.AuthorizedKey}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	overlay := filepath.Join(t.dir, "disk.qcow2")
	if err := (disk.Tool{}).CreateOverlay(ctx, os.Getenv("SOLSTICE_TEST_IMAGE"), "qcow2", overlay, 0); err != nil {
		b.Fatal(err)
	}
	ram := filepath.Join(t.dir, "ram")
	if err := os.WriteFile(ram, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(ram, int64(memMB)<<20); err != nil {
		b.Fatal(err)
	}
	spec := benchSpec(t.dir, "tpl", memMB, overlay, t.seed)
	spec.RAM = &qemu.RAM{Path: ram, Shared: true}
	inst, q := startBenchQEMU(b, ctx, spec)
	defer inst.Kill()
	defer q.Close()
	c, err := guestssh.WaitReady(ctx, t.target(spec.SSHPort), 250*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	c.Close()
	start := time.Now()
	if err := q.SaveState(ctx, filepath.Join(t.dir, "state")); err != nil {
		b.Fatal(err)
	}
	t.saveTook = time.Since(start)
	st, _ := os.Stat(filepath.Join(t.dir, "state"))
	b.Logf("template %d MiB saved in %s, device state %d bytes", memMB, t.saveTook, st.Size())
	return t
}

func (t *benchTemplate) target(port int) guestssh.Target {
	return guestssh.Target{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "solstice",
		PrivatePEM: t.key.PrivatePEM, HostKey: t.host.Public}
}

func startBenchQEMU(b *testing.B, ctx context.Context, spec qemu.Spec) (*qemu.Instance, *qemu.QMP) {
	console, err := os.Create(spec.QMP + ".console")
	if err != nil {
		b.Fatal(err)
	}
	defer console.Close()
	inst, q, err := qemu.Start(ctx, spec, qemu.Output{Console: console, Log: spec.QMP + ".log"})
	if err != nil {
		b.Fatal(err)
	}
	return inst, q
}

// restore starts one clone, times it to its first SSH login, and hands it
// to keep (which then owns it) or kills it.
func (t *benchTemplate) restore(b *testing.B, keep func(*qemu.Instance)) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := b.TempDir()
	overlay := filepath.Join(dir, "disk.qcow2")
	if err := (disk.Tool{}).CreateCloneOverlay(ctx, filepath.Join(t.dir, "disk.qcow2"), overlay); err != nil {
		b.Fatal(err)
	}
	spec := benchSpec(dir, "clone", t.memMB, overlay, t.seed)
	spec.Template = filepath.Join(t.dir, "disk.qcow2")
	spec.RAM = &qemu.RAM{Path: filepath.Join(t.dir, "ram")}
	spec.Incoming = filepath.Join(t.dir, "state")
	start := time.Now()
	inst, q := startBenchQEMU(b, ctx, spec)
	defer q.Close()
	loaded := time.Since(start)
	c, err := guestssh.WaitReady(ctx, t.target(spec.SSHPort), 50*time.Millisecond)
	if err != nil {
		inst.Kill()
		b.Fatal(err)
	}
	took := time.Since(start)
	c.Close()
	b.Logf("clone of %d MiB: state loaded after %s, ssh login after %s", t.memMB, loaded, took)
	if keep != nil {
		keep(inst)
	} else {
		inst.Kill()
	}
	return took
}

// memory is the summed resident and proportional set sizes of VMs.
type memory struct{ rss, pss int64 }

// pair starts two VMs of the template's size, warm clones or cold boots,
// lets them settle and reads their memory.
func (t *benchTemplate) pair(b *testing.B, warm bool) memory {
	var insts []*qemu.Instance
	defer func() {
		for _, i := range insts {
			i.Kill()
		}
	}()
	for range 2 {
		if warm {
			t.restore(b, func(i *qemu.Instance) { insts = append(insts, i) })
		} else {
			insts = append(insts, t.coldBoot(b))
		}
	}
	time.Sleep(5 * time.Second)
	var m memory
	for _, i := range insts {
		rss, pss := smapsRollup(b, i.Process.PID)
		m.rss += rss
		m.pss += pss
	}
	b.Logf("two %s VMs of %d MiB: rss %d MiB, pss %d MiB", map[bool]string{true: "warm", false: "cold"}[warm],
		t.memMB, m.rss>>20, m.pss>>20)
	return m
}

// coldBoot boots the image with the template's memory to an SSH login.
func (t *benchTemplate) coldBoot(b *testing.B) *qemu.Instance {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := b.TempDir()
	overlay := filepath.Join(dir, "disk.qcow2")
	if err := (disk.Tool{}).CreateOverlay(ctx, os.Getenv("SOLSTICE_TEST_IMAGE"), "qcow2", overlay, 0); err != nil {
		b.Fatal(err)
	}
	spec := benchSpec(dir, "cold", t.memMB, overlay, t.seed)
	inst, q := startBenchQEMU(b, ctx, spec)
	defer q.Close()
	c, err := guestssh.WaitReady(ctx, t.target(spec.SSHPort), 250*time.Millisecond)
	if err != nil {
		inst.Kill()
		b.Fatal(err)
	}
	c.Close()
	return inst
}

// smapsRollup reads a process's Rss and Pss in bytes.
func smapsRollup(b *testing.B, pid int) (rss, pss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			rss = kb << 10
		case "Pss:":
			pss = kb << 10
		}
	}
	return rss, pss
}
