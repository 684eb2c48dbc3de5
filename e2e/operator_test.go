//go:build e2e

package e2e

// The nomad CLI commands the docs give operators (getting-started.md,
// install-and-upgrade.md, operating.md, faq.md), run as written with the
// placeholders (NODE_ID, job and allocation IDs) filled in from a real
// agent, and checked for what a reader is told to look for in their
// output.

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// mustNomad runs the nomad CLI against n, logs what it printed and fails
// t when it exits non-zero.
func mustNomad(t *testing.T, n *Nomad, args ...string) string {
	t.Helper()
	out, err := n.nomadCLI(args...)
	t.Logf("nomad %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("nomad %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// wantLines fails t for every pattern (a multi-line regexp keyed by what
// it shows the reader) that out does not match.
func wantLines(t *testing.T, what, out string, patterns map[string]string) {
	t.Helper()
	for show, re := range patterns {
		if !regexp.MustCompile("(?m)" + re).MatchString(out) {
			t.Errorf("%s does not show %s (no match for %s)", what, show, re)
		}
	}
}

// solsticeVersion is what bin/solstice version prints after "solstice ".
func solsticeVersion(t *testing.T) string {
	t.Helper()
	out, errOut, code := cli(t, nil, "version")
	v, ok := strings.CutPrefix(strings.TrimSpace(out), "solstice ")
	if code != 0 || !ok || v == "" {
		t.Fatalf("solstice version: exit %d, %q %q", code, out, errOut)
	}
	return v
}

// nodeStatus is how the docs check a client after installing the plugin:
// nomad node status -verbose NODE_ID (getting-started.md, operating.md)
// and -self -verbose on the client (install-and-upgrade.md) show the
// driver detected and healthy, with its version (the one bin/solstice
// version prints), its accelerator and the image; solstice image list
// (operating.md) shows the client offering the image.
func nodeStatus(t *testing.T, n *Nomad, node *api.Node) {
	version := solsticeVersion(t)
	want := map[string]string{
		"the node":             `^ID\s+= ` + regexp.QuoteMeta(node.ID) + `[ \t]*$`,
		"the driver healthy":   `^solstice-vm\s+true\s+true\s+Healthy\s`,
		"the driver's version": `^driver\.solstice-vm\.version\s+= ` + regexp.QuoteMeta(version) + `[ \t]*$`,
		"the accelerator, tcg": `^driver\.solstice-vm\.accelerator\s+= tcg[ \t]*$`,
		// Any reason: until the driver's accelerator probe has run (moments
		// after the client starts) it says "probe not run yet".
		"why the accelerator is so": `^driver\.solstice-vm\.accelerator_reason\s+= \S`,
		"the image offered":         `^driver\.solstice-vm\.image\.solstice-test\s+= true[ \t]*$`,
	}
	for _, args := range [][]string{{"node", "status", "-verbose", node.ID}, {"node", "status", "-self", "-verbose"}} {
		out := mustNomad(t, n, args...)
		wantLines(t, "nomad "+strings.Join(args, " "), out, want)
	}
	out, errOut, code := cli(t, []string{"NOMAD_ADDR=" + n.Addr}, "image", "list")
	t.Logf("solstice image list:\n%s%s", out, errOut)
	if code != 0 {
		t.Fatalf("solstice image list: exit %d", code)
	}
	wantLines(t, "solstice image list", out, map[string]string{
		"the client offering the image": `^` + regexp.QuoteMeta(node.Name) + `\s+solstice-test\s+(true|false)\s`,
	})
}

// installSolstice is install-and-upgrade.md's install line, with dest for
// /usr/local/bin/solstice.
func installSolstice(t *testing.T, dest string) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	cmd := exec.CommandContext(ctx, "install", "-m", "0755", filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install -m 0755 bin/solstice %s: %v\n%s", dest, err, out)
	}
}

// waitShimService waits for the Forgejo shim's service to be registered in
// Nomad's catalog and its /healthz to answer 200 (asked directly: Nomad's
// check result lags a restart by up to its interval).
func waitShimService(t *testing.T, n *Nomad) {
	t.Helper()
	waitFor(t, 2*time.Minute, "the shim's service to be registered and healthy", func() bool {
		regs, _, err := n.API.Services().Get(forgejoService, nil)
		if err != nil || len(regs) != 1 {
			return false
		}
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/healthz", regs[0].Address, regs[0].Port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// upgradeShims is install-and-upgrade.md's upgrade of the shims: install
// the new bin/solstice over the file the job runs, then nomad job restart
// -on-error=fail solstice-runners. Until the restart the shim runs the old (now
// replaced) file; after it the shim runs the new one and is healthy.
func upgradeShims(t *testing.T, n *Nomad, bin string) {
	alloc := (&nsView{Nomad: n, ns: api.DefaultNamespace}).shimAlloc(t, "forgejo")
	waitDeployed(t, n, "solstice-runners")
	old, _ := taskProcess(t, alloc.ID, "shim", 0)
	installSolstice(t, bin)
	if exe := procExe(old); exe != bin+" (deleted)" {
		t.Fatalf("after install the running shim's executable is %q, want the replaced %s", exe, bin)
	}
	start := time.Now()
	mustNomad(t, n, "job", "restart", "-on-error=fail", "solstice-runners")
	pid, _ := taskProcess(t, alloc.ID, "shim", old)
	if exe := procExe(pid); exe != bin {
		t.Errorf("after the restart the shim runs %q, want the installed %s", exe, bin)
	}
	if alive(old) {
		t.Errorf("the old shim (pid %d) still runs after the restart", old)
	}
	waitShimService(t, n)
	t.Logf("the shim runs the installed binary again and is healthy %s after nomad job restart", time.Since(start).Round(time.Second))
}

// waitDeployed waits for the job's latest deployment to succeed: nomad job
// restart refuses a job whose deployment still runs, as the shims' does
// for a while after they are healthy (min_healthy_time).
func waitDeployed(t *testing.T, n *Nomad, job string) {
	t.Helper()
	waitFor(t, 3*time.Minute, "the deployment of "+job+" to succeed", func() bool {
		d, _, err := n.API.Jobs().LatestDeployment(job, nil)
		if err != nil || d == nil {
			return false
		}
		if d.Status == api.DeploymentStatusFailed {
			t.Fatalf("the deployment of %s failed: %s", job, d.StatusDescription)
		}
		return d.Status == api.DeploymentStatusSuccessful
	})
}

func procExe(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// checkShimLog is operating.md's nomad alloc logs -stderr -job solstice-runners
// shim: the shim's own log, which shows each start (two: the first and the
// one after the upgrade's restart) and the tasks it took and finished.
func checkShimLog(t *testing.T, n *Nomad, tasks int) {
	out := mustNomad(t, n, "alloc", "logs", "-stderr", "-job", "solstice-runners", "shim")
	if got := strings.Count(out, "solstice-forgejo: runner ready:"); got != 2 {
		t.Errorf("the shim's log shows %d starts (runner ready), want 2: the first and the one after the restart", got)
	}
	for _, line := range []string{"fetched a task", "task finished"} {
		if got := strings.Count(out, line); got < tasks {
			t.Errorf("the shim's log has %q %d times, want at least %d (one per job)", line, got, tasks)
		}
	}
}

var (
	dispatchedRe = regexp.MustCompile(`dispatched as Nomad job (\S+) `)
	placedRe     = regexp.MustCompile(`\(allocation ([0-9a-f]+)\)`)
)

// inspectFailedJob is operating.md's look at a failed job in Nomad, with
// the job and allocation the job's forge log names: the job is dead with
// its allocation failed, alloc status lists the driver's task events,
// alloc logs shows the console and the steps, and the events file holds
// the job's events from start to its failed end.
func inspectFailedJob(t *testing.T, n *Nomad, forgeLog string) {
	job, alloc := dispatchedRe.FindStringSubmatch(forgeLog), placedRe.FindStringSubmatch(forgeLog)
	if job == nil || alloc == nil {
		t.Fatalf("the forge log names no Nomad job or allocation:\n%s", forgeLog)
	}
	out := mustNomad(t, n, "job", "status", job[1])
	wantLines(t, "nomad job status", out, map[string]string{
		"the job dead":           `^Status\s+= dead[ \t]*$`,
		"the allocation, failed": `^` + alloc[1] + `\s.*\sfailed\s`,
	})
	out = mustNomad(t, n, "alloc", "status", alloc[1])
	wantLines(t, "nomad alloc status", out, map[string]string{
		"the allocation failed": `^Client Status\s+= failed[ \t]*$`,
		"Fetching image":        `\sDriver\s+Fetching image[ \t]*$`,
		"Booting":               `\sDriver\s+Booting[ \t]*$`,
		"Started":               `\sDriver\s+Started[ \t]*$`,
		"Running job":           `\sDriver\s+Running job[ \t]*$`,
		"the exit code":         `\sTerminated\s+Exit Code: 1\b`,
	})
	out = mustNomad(t, n, "alloc", "logs", alloc[1], "job")
	for _, want := range []string{"Linux version", "probe=42", "cleanup ran"} {
		if !strings.Contains(out, want) {
			t.Errorf("nomad alloc logs lacks %q", want)
		}
	}
	out = mustNomad(t, n, "alloc", "fs", alloc[1], "alloc/solstice/job/events.jsonl")
	checkEventsFile(t, out)
}

// checkEventsFile wants one JSON event per line: the job's start, the
// failing step's exit code 3, the step that ran after it, and the job's
// failed end last.
func checkEventsFile(t *testing.T, text string) {
	t.Helper()
	var events []contract.Event
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ev, err := contract.DecodeEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("events.jsonl line %d: %v\n%s", len(events)+1, err, sc.Text())
		}
		events = append(events, ev)
	}
	if len(events) < 3 || events[0].Type != contract.TypeJobStarted {
		t.Fatalf("events.jsonl: %d events, want the job's start first", len(events))
	}
	last := events[len(events)-1]
	if last.Type != contract.TypeJobFinished || last.Conclusion != contract.Failure {
		t.Errorf("the last event is %s %s, want %s %s", last.Type, last.Conclusion, contract.TypeJobFinished, contract.Failure)
	}
	var exit3, cleanup bool
	for _, ev := range events {
		exit3 = exit3 || ev.Type == contract.TypeStepFinished && ev.ExitCode != nil && *ev.ExitCode == 3
		cleanup = cleanup || ev.Type == contract.TypeLog && strings.Contains(ev.Line, "cleanup ran")
	}
	if !exit3 || !cleanup {
		t.Errorf("events.jsonl: a step ending with exit code 3: %v, the cleanup step's line: %v", exit3, cleanup)
	}
}

const queuedWorkflow = `name: queued
on: push
jobs:
  omnios:
    runs-on: omnios-r151056
    steps:
      - run: uname -a
`

// queuedJob is faq.md's "My job stays queued": a job for a label whose
// image no client offers waits in Nomad. solstice image list shows no
// client with the image; the label's parent job lists the dispatch as
// pending, and the dispatch's status says why it is not placed.
func queuedJob(t *testing.T, f *forgeVM) {
	const parent = "solstice-omnios-r151056"
	f.g.CreateRepo("queued")
	f.g.PushFile("queued", ".gitea/workflows/queued.yml", queuedWorkflow)
	var child string
	waitFor(t, 3*time.Minute, "a dispatch of "+parent, func() bool {
		stubs, _, err := f.n.API.Jobs().List(nil)
		for _, s := range stubs {
			if err == nil && s.ParentID == parent {
				child = s.ID
				return true
			}
		}
		return false
	})
	out, errOut, code := cli(t, []string{"NOMAD_ADDR=" + f.n.Addr}, "image", "list")
	t.Logf("solstice image list:\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "solstice-test") || strings.Contains(out, "omnios-r151056") {
		t.Errorf("solstice image list: exit %d; want solstice-test offered and omnios-r151056 by no client", code)
	}
	out = mustNomad(t, f.n, "job", "status", parent)
	wantLines(t, "nomad job status "+parent, out, map[string]string{
		"the dispatch, pending": `^` + regexp.QuoteMeta(child) + `\s+pending[ \t]*$`,
	})
	out = mustNomad(t, f.n, "job", "status", child)
	wantLines(t, "nomad job status "+child, out, map[string]string{
		"the placement failure": `^Placement Failure[ \t]*$`,
		"the missing image":     `solstice-vm\.image\.omnios-r151056`,
		"no allocation":         `^No allocations placed[ \t]*$`,
	})
}
