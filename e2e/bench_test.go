//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// BenchmarkDispatchOverhead measures Solstice's cold path, from dispatch to
// the first step starting in the guest, against a bare QEMU boot of the
// same image to an SSH login, side by side in one run: the samples
// alternate (bare, Solstice, bare, …) so that load on the host falls on
// both sides alike. It prints the medians and spread of each side and of
// the cold path's phases, read from the driver's task events, and reports
// the medians and the cold/bare ratio as metrics. Both run under TCG on
// this machine; the ratio is what carries over.
//
// SOLSTICE_BENCH_SAMPLES sets the samples per side (default and minimum 5).
func BenchmarkDispatchOverhead(b *testing.B) {
	samples := benchSamples(b)
	n := startBenchNomad(b)
	// One job first, so the image is in the client's cache: the first
	// fetch is a one-off cost, not the path's.
	firstStep(b, n)
	var bare []bareSample
	var cold []coldSample
	for i := 0; i < samples; i++ {
		bare = append(bare, bareBoot(b))
		cold = append(cold, firstStep(b, n))
		fmt.Printf("sample %d: bare %s, cold %s (agent %s)\n", i+1, secs(bare[i].total), secs(cold[i].total), cold[i].agent)
	}
	fmt.Printf("last cold sample's task events (s from the dispatch): %s\n", cold[len(cold)-1].timeline)
	rows := benchRows(bare, cold)
	printBenchTable(os.Stdout, samples, rows)
	for _, r := range rows {
		b.ReportMetric(median(r.values).Seconds(), "s/"+r.metric)
	}
	ratio := float64(median(rowValues(rows, "cold"))) / float64(median(rowValues(rows, "bare")))
	fmt.Printf("cold/bare (medians): %.2f\n", ratio)
	b.ReportMetric(ratio, "cold/bare")
}

func benchSamples(b *testing.B) int {
	n := 5
	if s := os.Getenv("SOLSTICE_BENCH_SAMPLES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("SOLSTICE_BENCH_SAMPLES=%q: %v", s, err)
		}
		n = v
	}
	return max(n, 5, b.N)
}

func startBenchNomad(b *testing.B) *Nomad {
	return StartNomad(b, WithPlugin(pluginConfig(b, pluginOpts{})))
}

// bareSample is one bare boot: QEMU's start to the first SSH login.
type bareSample struct{ total time.Duration }

// coldSample is one dispatch to its first step, cut at the driver's task
// events: the allocation's creation (placement), "Booting" (QEMU is being
// started: the image, overlay and seed are ready), "Started" (the first SSH
// login), "Agent started" (the agent runs the plan) and the step_started
// event as a follower of the events file sees it.
type coldSample struct {
	total, placement, prepare, boot, launch, step time.Duration
	agent                                         string // how the agent came in ("Agent started")
	booting                                       string // where the guest came from ("Booting")
	up                                            string // how the boot went ("Started")
	timeline                                      string // every task event, from the dispatch
}

// benchRow is one line of the table.
type benchRow struct {
	name, metric string
	values       []time.Duration
}

func benchRows(bare []bareSample, cold []coldSample) []benchRow {
	var bareTotal []time.Duration
	for _, s := range bare {
		bareTotal = append(bareTotal, s.total)
	}
	return append([]benchRow{{"bare boot: QEMU start → SSH login", "bare", bareTotal}}, phaseRows("cold", cold)...)
}

func rowValues(rows []benchRow, metric string) []time.Duration {
	for _, r := range rows {
		if r.metric == metric {
			return r.values
		}
	}
	return nil
}

func printBenchTable(w *os.File, samples int, rows []benchRow) {
	fmt.Fprintf(w, "\n%d samples per side, interleaved; seconds\n", samples)
	fmt.Fprintf(w, "%-36s %7s %7s %7s   %s\n", "phase", "median", "min", "max", "samples")
	for _, r := range rows {
		var all []string
		for _, v := range r.values {
			all = append(all, secs(v))
		}
		fmt.Fprintf(w, "%-36s %7s %7s %7s   %s\n", r.name, secs(median(r.values)),
			secs(slices.Min(r.values)), secs(slices.Max(r.values)), strings.Join(all, " "))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bareBoot boots the test image as a person would by hand: an overlay, a
// seed with a login key and host key, QEMU with the driver's own command
// line (so the same virtual hardware), then SSH polled as fast as is
// useful. It times QEMU's start to the first login.
func bareBoot(b *testing.B) bareSample {
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
	err := cloudinit.WriteISO(seed, cloudinit.Seed{InstanceID: "bench", Hostname: "bench",
		Users:   []cloudinit.User{{Name: "solstice", SSHAuthorizedKeys: []string{key.AuthorizedKey}}},
		HostKey: &cloudinit.HostKey{PrivatePEM: string(host.PrivatePEM), Public: host.AuthorizedKey}})
	if err != nil {
		b.Fatal(err)
	}
	port, _ := qemu.FreePort("127.0.0.1")
	console, _ := os.Create(filepath.Join(dir, "console.log"))
	defer console.Close()
	start := time.Now()
	inst, q, err := qemu.Start(ctx, qemu.Spec{Binary: "qemu-system-x86_64", Name: "bench", Accel: qemu.AccelTCG,
		MemoryMB: 1024, CPUs: 1, Disk: overlay, Base: img, BaseFormat: "qcow2", Seed: seed,
		SSHHost: "127.0.0.1", SSHPort: port,
		QMP: filepath.Join(dir, "qmp.sock"), PIDFile: filepath.Join(dir, "pid")},
		qemu.Output{Console: console, Log: filepath.Join(dir, "qemu.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Kill()
	defer q.Close()
	t := guestssh.Target{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "solstice", PrivatePEM: key.PrivatePEM, HostKey: host.Public}
	c, err := bareLogin(ctx, t)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	c.Close()
	return bareSample{total: took}
}

// bareLogin polls for sshd's banner every 100 ms, each try bounded to a
// second (slirp accepts a forwarded connection before the guest can take
// it, and such a connection can hang for seconds), then logs in. It is
// the bench's own loop, so the bare figure does not move with the driver.
func bareLogin(ctx context.Context, t guestssh.Target) (*guestssh.Client, error) {
	for {
		if bannerWithin(ctx, t.Addr, time.Second) {
			c, err := guestssh.Dial(ctx, t)
			if err == nil {
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no ssh login at %s: %w", t.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func bannerWithin(ctx context.Context, addr string, limit time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetReadDeadline(dl)
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

// agentStartedState reads the allocation once its task's events include
// "Agent started". The first step can show in the events file before
// that: the client sends task events to the servers in batches.
func agentStartedState(b *testing.B, n *Nomad, allocID string) (*api.Allocation, *api.TaskState) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, _, err := n.API.Allocations().Info(allocID, nil)
		if err != nil {
			b.Fatalf("read allocation %s: %v", allocID, err)
		}
		ts := a.TaskStates["job"]
		if ts == nil {
			b.Fatalf("allocation %s has no state for task job", allocID)
		}
		if slices.ContainsFunc(ts.Events, func(e *api.TaskEvent) bool { return e.DriverMessage == "Agent started" }) ||
			time.Now().After(deadline) {
			return a, ts
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstStep dispatches a one-step job and times it to its step_started,
// cut into phases by the allocation's creation and the task's events.
func firstStep(b *testing.B, n *Nomad) coldSample {
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
	var stepAt time.Time
	err := d.Follow(ctx, st, 0, func(line []byte, _ int64) error {
		ev, err := contract.DecodeEvent(line)
		if err == nil && ev.Type == contract.TypeStepStarted {
			stepAt = time.Now()
			return contract.ErrStop
		}
		return nil
	})
	if err != nil || stepAt.IsZero() {
		b.Fatalf("no step started: %v", err)
	}
	s := coldPhases(b, n, st.AllocID, start, stepAt)
	n.waitNoRunningAllocs(2 * time.Minute)
	d.Finish(ctx, job)
	return s
}

// coldPhases reads the allocation's creation time and the task's events.
func coldPhases(b *testing.B, n *Nomad, allocID string, start, stepAt time.Time) coldSample {
	a, ts := agentStartedState(b, n, allocID)
	placed := time.Unix(0, a.CreateTime)
	event := func(msg string) *api.TaskEvent {
		for _, e := range ts.Events {
			if e.Type == api.TaskDriverMessage && e.DriverMessage == msg {
				return e
			}
		}
		b.Fatalf("allocation %s: no task event %q in %s", allocID, msg, eventList(ts.Events))
		return nil
	}
	at := func(msg string) time.Time { return time.Unix(0, event(msg).Time) }
	booting, started, agent := at("Booting"), at("Started"), at("Agent started")
	var timeline []string
	for _, e := range ts.Events {
		timeline = append(timeline, fmt.Sprintf("%s %q", secs(time.Unix(0, e.Time).Sub(start)), cmp.Or(e.DriverMessage, e.Type)))
	}
	return coldSample{
		timeline:  strings.Join(timeline, ", "),
		agent:     event("Agent started").Details["detail"],
		booting:   event("Booting").Details["detail"],
		up:        event("Started").Details["detail"],
		total:     stepAt.Sub(start),
		placement: placed.Sub(start),
		prepare:   booting.Sub(placed),
		boot:      started.Sub(booting),
		launch:    agent.Sub(started),
		step:      stepAt.Sub(agent),
	}
}

func eventList(evs []*api.TaskEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s/%q", e.Type, e.DriverMessage))
	}
	return strings.Join(s, ", ")
}
