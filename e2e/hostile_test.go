//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// The memory bounds the hostile jobs are held to: the solstice-vm plugin
// process (it serves every VM of the node) and each shim process (the
// Forgejo runner, solstice run) must stay under these peak resident sizes
// while a guest floods output. README's containment section states them.
const (
	driverRSSBound = 100 << 20
	shimRSSBound   = 100 << 20
)

// floodBound is max_events_size for the hostile tests: the flood step
// prints 2 GiB without a newline and the driver ends the job at this
// bound, which keeps the test's run time to what a TCG guest manages.
const floodBound = 32 << 20

// hostileWorkflow has one job per attack and a last job that must still
// run through the same shim.
const hostileWorkflow = `name: hostile
on: push
jobs:
  forged:
    runs-on: solstice-test
    steps:
      - name: forge events
        run: |
          e=/var/tmp/solstice/events.jsonl
          printf '%s\n' '{"seq":9999,"type":"step_started","step":-1}' >> "$e"
          printf '%s' '{"seq":10000,"type":"lo' >> "$e"
  flood:
    runs-on: solstice-test
    steps:
      - name: flood
        run: head -c 2147483648 /dev/zero | tr '\0' a
  endless:
    runs-on: solstice-test
    timeout-minutes: 1
    steps:
      - name: never exit
        run: |
          trap '' TERM INT HUP
          while :; do sleep 1; done
  agent:
    runs-on: solstice-test
    steps:
      - name: replace the agent
        run: |
          a=/var/tmp/solstice/bin/solstice-guest
          rm -f "$a"
          printf '#!/bin/sh\necho "not the agent" >&2\nexit 0\n' > "$a"
          chmod 755 "$a"
          for p in /proc/[0-9]*; do
            case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in
              *"solstice-guest follow "* | *"solstice-guest run "*"--follow"*) kill -9 "${p#/proc/}" 2>/dev/null || true ;;
            esac
          done
          sleep 600
  after:
    needs: [forged, flood, endless, agent]
    if: always()
    runs-on: solstice-test
    steps:
      - run: echo still serving
`

// hostileCase is one attack and how it must end: the forge's conclusion,
// solstice run's exit code, and words of the error both show.
type hostileCase struct {
	job  string
	code int
	want string
}

var hostileCases = []hostileCase{
	{"forged", contract.ExitInfrastructure, "the guest sent an invalid event at offset "},
	{"flood", contract.ExitInfrastructure, fmt.Sprintf("the job's event stream exceeded max_events_size (%d bytes); the runner stopped it", floodBound)},
	{"endless", contract.ExitJobFailed, "The job has exceeded the maximum execution time of 1 minutes."},
	{"agent", contract.ExitInfrastructure, "the guest agent stopped sending the job's events: its follow ended 3 times in a row without the job's end"},
}

// TestHostileJobs runs the four attacks of issue 13 through Gitea and the
// Forgejo shim (a `solstice forgejo run` process) and through `solstice
// run`, on one Nomad agent: each job ends with its error in the forge's
// log and in solstice run's output and exit code, a normal job runs
// through the same shim afterwards, and the plugin's and the shims'
// resident memory stays under the stated bounds throughout.
func TestHostileJobs(t *testing.T) {
	alongside(t)
	start := time.Now()
	g := StartGitea(t)
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: fmt.Sprintf("max_events_size = \"%dMiB\"", floodBound>>20)})))
	syncLabels(t, n)
	rss := newRSSWatch(t, n)
	shimPID := startShimProcess(t, g, n, "e2e-hostile")
	rss.watch("shim", shimPID)
	g.CreateRepo("hostile")
	g.PushFile("hostile", ".gitea/workflows/hostile.yml", hostileWorkflow)

	// solstice run takes the same attacks while the forge's jobs run.
	dir := runRepo(t, hostileWorkflow)
	var wg sync.WaitGroup
	results := make([]runResult, len(hostileCases))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, c := range hostileCases {
			results[i] = runHostile(t, n, rss, dir, c.job)
		}
	}()

	jobs := g.WaitJobsDone("hostile", len(hostileCases)+1, 20*time.Minute)
	t.Logf("gitea: all jobs done after %s", time.Since(start).Round(time.Second))
	for _, c := range hostileCases {
		j := findJob(t, jobs, c.job)
		log := g.jobLogTail(t, "hostile", j.ID, 1<<20)
		t.Logf("gitea %s: %s, %s; log tail:\n%s", c.job, j.Conclusion, j.CompletedAt.Sub(j.StartedAt).Round(time.Second), tail(clip(log), 8))
		if j.Conclusion != "failure" || !strings.Contains(log, c.want) {
			t.Errorf("gitea %s: %s, want failure with %q", c.job, j.Conclusion, c.want)
		}
		if j.CompletedAt.Before(j.StartedAt) || strings.Contains(log, "0001-01-01") {
			t.Errorf("gitea %s: dated wrong: started %s, completed %s", c.job, j.StartedAt, j.CompletedAt)
		}
	}
	after := findJob(t, jobs, "after")
	if log := g.jobLogTail(t, "hostile", after.ID, 1<<20); after.Conclusion != "success" || !strings.Contains(log, "still serving") {
		t.Errorf("after the attacks the shim did not run a normal job: %s\n%s", after.Conclusion, tail(log, 20))
	}

	wg.Wait()
	for i, c := range hostileCases {
		r := results[i]
		t.Logf("solstice run --job %s: exit %d after %s; output tail:\n%s", c.job, r.code, r.took.Round(time.Second), tail(clip(r.tail), 6))
		if r.code != c.code || !strings.Contains(r.tail, c.want) {
			t.Errorf("solstice run --job %s: exit %d, want %d with %q", c.job, r.code, c.code, c.want)
		}
	}
	rss.stop()
	rss.check(t, "driver", driverRSSBound)
	rss.check(t, "shim", shimRSSBound)
	rss.check(t, "solstice run", shimRSSBound)
	t.Logf("TestHostileJobs took %s", time.Since(start).Round(time.Second))
}

func findJob(t *testing.T, jobs []GiteaJob, name string) GiteaJob {
	t.Helper()
	for _, j := range jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("no job %q in %+v", name, jobs)
	return GiteaJob{}
}

// clip shortens each line of a log for the test's own output (a flood's
// lines are 64 KiB).
func clip(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + fmt.Sprintf("… (%d bytes)", len(l))
		}
	}
	return strings.Join(lines, "\n")
}

// startShimProcess runs `solstice forgejo run` against g and n as its own
// process, so its memory can be measured, until the test ends.
func startShimProcess(t *testing.T, g *Gitea, n *Nomad, name string) int {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "shim.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "forgejo", "run",
		"--url", g.URL, "--name", name, "--capacity", "2", "--listen", "", "--token", g.RegistrationToken())
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+n.Addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the shim did not stop within 30s of SIGINT")
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("shim log:\n%s", tail(clip(string(data)), 60))
		}
	})
	return cmd.Process.Pid
}

// runResult is how one `solstice run` ended.
type runResult struct {
	code int
	took time.Duration
	tail string // the last 64 KiB of its output
}

// runHostile runs `solstice run --job job`, its output to a file (a
// flood is hundreds of MiB), and watches its memory.
func runHostile(t *testing.T, n *Nomad, rss *rssWatch, dir, job string) runResult {
	out := filepath.Join(t.TempDir(), job+".out")
	f, err := os.Create(out)
	if err != nil {
		t.Error(err)
		return runResult{code: -1}
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "run", "--job", job, "ci.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+n.Addr)
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return runResult{code: -1}
	}
	rss.watch("solstice run", cmd.Process.Pid)
	timer := time.AfterFunc(10*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err = cmd.Wait()
	return runResult{code: exitCode(err), took: time.Since(start), tail: fileTail(out, 64<<10)}
}

func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	f.Seek(max(st.Size()-n, 0), io.SeekStart)
	data, _ := io.ReadAll(f)
	return string(data)
}

// jobLogTail is the last n bytes of a job's log, read as a stream: a
// flood's log is too big to hold.
func (g *Gitea) jobLogTail(t *testing.T, repo string, job int64, n int) string {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t, 2*time.Minute), "GET",
		fmt.Sprintf("%sapi/v1/repos/%s/%s/actions/jobs/%d/logs", g.URL, g.User, repo, job), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+g.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("job %d log: %v", job, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("job %d log: status %d", job, resp.StatusCode)
	}
	buf := make([]byte, 0, 2*n)
	chunk := make([]byte, 256<<10)
	for {
		k, err := resp.Body.Read(chunk)
		buf = append(buf, chunk[:k]...)
		if len(buf) > n {
			buf = append(buf[:0], buf[len(buf)-n:]...)
		}
		if err != nil {
			break
		}
	}
	return string(buf)
}

// rssWatch samples the resident memory of the processes under test every
// 100 ms: the solstice-vm plugin of the test's own Nomad agent (found
// afresh each time), and the shims it is told of. It keeps each role's
// peak, from VmRSS and VmHWM.
type rssWatch struct {
	t     *testing.T
	agent int // the Nomad agent whose plugin is the driver
	mu    sync.Mutex
	pids  map[int]string // pid → role
	peak  map[string]int64
	done  chan struct{}
	wg    sync.WaitGroup
}

func newRSSWatch(t *testing.T, n *Nomad) *rssWatch {
	w := &rssWatch{t: t, agent: n.Agent.PID(), pids: map[int]string{}, peak: map[string]int64{}, done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	t.Cleanup(w.stop)
	return w
}

func (w *rssWatch) watch(role string, pid int) {
	w.mu.Lock()
	w.pids[pid] = role
	w.mu.Unlock()
}

func (w *rssWatch) loop() {
	defer w.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i%20 == 0 { // scanning /proc is dear; the plugin lives long
			// Only this agent's plugin: tests running alongside run
			// the same binary, and a plugin's VmHWM is its lifetime's.
			for _, pid := range pluginPIDs(w.t) {
				if parentPID(pid) == w.agent {
					w.watch("driver", pid)
				}
			}
		}
		w.sample()
		select {
		case <-w.done:
			return
		case <-tick.C:
		}
	}
}

func (w *rssWatch) sample() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for pid, role := range w.pids {
		kb, ok := peakKB(pid)
		if !ok {
			continue
		}
		w.peak[role] = max(w.peak[role], kb<<10)
	}
}

func (w *rssWatch) stop() {
	select {
	case <-w.done:
		return
	default:
	}
	close(w.done)
	w.wg.Wait()
}

// check logs a role's peak and fails the test past bound, or when the
// role was never seen.
func (w *rssWatch) check(t *testing.T, role string, bound int64) {
	t.Helper()
	w.mu.Lock()
	peak, ok := w.peak[role]
	w.mu.Unlock()
	t.Logf("peak RSS of %s: %.1f MiB (bound %d MiB)", role, float64(peak)/(1<<20), bound>>20)
	if !ok || peak == 0 {
		t.Errorf("no RSS sample of %s", role)
	} else if peak > bound {
		t.Errorf("%s peaked at %.1f MiB resident, over the %d MiB bound", role, float64(peak)/(1<<20), bound>>20)
	}
}

// peakKB is a process's larger of VmRSS and VmHWM in KiB.
func peakKB(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var best int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		var kb int64
		for _, key := range []string{"VmRSS:", "VmHWM:"} {
			if strings.HasPrefix(s.Text(), key) {
				fmt.Sscan(strings.TrimPrefix(s.Text(), key), &kb)
				best = max(best, kb)
			}
		}
	}
	return best, best > 0
}

// parentPID is a process's parent, 0 when it is gone.
func parentPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			ppid, _ := strconv.Atoi(strings.TrimSpace(v))
			return ppid
		}
	}
	return 0
}
