//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// TestOneFileInstall is issue 17's operator path on one shared agent: a
// plugin_dir holding nothing but solstice-vm (the guest agents are
// embedded in it, no guest_agent_dir), a catalog image served over HTTP
// and so downloaded on first use with progress in the task events and in
// solstice run's output, solstice image list showing which client has it,
// and the CLI's Nomad connection flags against this real agent.
func TestOneFileInstall(t *testing.T) {
	plugin := lonePlugin(t)
	img, sum := testImage(t)
	srv := slowImageServer(t, img)
	cache := t.TempDir() // empty: the first task downloads the image
	n := StartNomad(t, WithPluginBinary(plugin), WithPlugin(emptyCachePlugin(cache, srv.URL+"/solstice-test.qcow2", sum)))
	syncLabel(t, n, nil)

	if entries, _ := os.ReadDir(filepath.Join(n.DataDir(), "plugins")); len(entries) != 1 || entries[0].Name() != "solstice-vm" {
		t.Fatalf("plugin_dir holds %v, want solstice-vm alone", entries)
	}
	t.Run("CLI reaches the agent", func(t *testing.T) { cliReachesAgent(t, n) })
	t.Run("unreachable cluster", func(t *testing.T) { unreachableCluster(t) })
	t.Run("first pull and embedded agent", func(t *testing.T) { firstPull(t, n, cache) })
	t.Run("image list", func(t *testing.T) { imageList(t, n) })
}

// lonePlugin copies bin/solstice-vm into a directory of its own, so the
// driver cannot find guest agents beside its executable.
func lonePlugin(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join(env(t, "SOLSTICE_BIN"), "solstice-vm"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "solstice-vm")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("solstice-vm is %.1f MiB with the guest agents embedded", float64(len(data))/(1<<20))
	return path
}

// slowImageServer serves the test image at about 16 MiB/s, as a real
// mirror would be slower than loopback, so a download lasts long enough
// (about five seconds) to report progress more than once.
func slowImageServer(t *testing.T, path string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		buf := make([]byte, 1<<20)
		for {
			k, err := f.Read(buf)
			if k > 0 {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(60 * time.Millisecond)
			}
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// cliCase is one way of pointing the CLI at a cluster.
type cliCase struct {
	name string
	args []string // connection flags
	env  []string
}

// cliReachesAgent: every way to name the cluster reaches the real agent;
// a flag wins over the environment. (A -token/NOMAD_TOKEN row joins this
// table once the agent runs with ACLs.)
func cliReachesAgent(t *testing.T, n *Nomad) {
	for _, c := range []cliCase{
		{name: "NOMAD_ADDR", env: []string{"NOMAD_ADDR=" + n.Addr}},
		{name: "-address", args: []string{"-address", n.Addr}},
		{name: "-address over NOMAD_ADDR", args: []string{"-address", n.Addr}, env: []string{"NOMAD_ADDR=http://127.0.0.1:1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, cmd := range [][]string{{"jobs", "list"}, {"image", "list"}} {
				out, errOut, code := cli(t, c.env, append(cmd, c.args...)...)
				if code != 0 || !strings.Contains(out, "solstice-test") {
					t.Fatalf("solstice %s: exit %d, stdout %q, stderr %q", strings.Join(cmd, " "), code, out, errOut)
				}
			}
		})
	}
}

// unreachableCluster: solstice run names the cluster that does not answer
// and how to run locally instead, within seconds, and starts nothing.
func unreachableCluster(t *testing.T) {
	closed := closedPort(t)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // a certificate nobody trusts
	t.Cleanup(tlsSrv.Close)
	dir := runRepo(t, "on: push\njobs:\n  a:\n    runs-on: solstice-test\n    steps:\n      - run: echo never\n")
	for _, c := range []struct {
		cliCase
		reason string
	}{
		{cliCase{name: "NOMAD_ADDR refused", env: []string{"NOMAD_ADDR=" + closed}}, "connection refused"},
		{cliCase{name: "-address refused", args: []string{"-address", closed}}, "connection refused"},
		{cliCase{name: "TLS verification fails", args: []string{"-address", tlsSrv.URL}}, "certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, code := cliIn(t, dir, c.env, append(append([]string{"run"}, c.args...), "ci.yml")...)
			took := time.Since(start)
			if code != contract.ExitInfrastructure || !strings.Contains(errOut, "does not answer") ||
				!strings.Contains(errOut, c.reason) || !strings.Contains(errOut, "-local") {
				t.Fatalf("exit %d, stderr %q, stdout %q; want %d with the reason (%s) and -local", code, errOut, out, contract.ExitInfrastructure, c.reason)
			}
			if strings.Contains(out, "local Nomad agent") || took > 15*time.Second {
				t.Fatalf("took %s, stdout %q: want a quick failure and no local agent", took, out)
			}
			t.Logf("failed in %s: %s", took.Round(time.Millisecond), strings.TrimSpace(errOut))
		})
	}
}

// firstPull runs a workflow through solstice run while the image is not
// yet on the client: the download's progress shows in the task events and
// in solstice run's output with growing byte counts, and the job runs with
// the guest agent the driver carries.
func firstPull(t *testing.T, n *Nomad, cache string) {
	events := watchDownloadEvents(t, n)
	dir := runRepo(t, "on: push\njobs:\n  hello:\n    runs-on: solstice-test\n    steps:\n      - run: echo \"agent $((6*7)) from the driver\"\n")
	cmd, out := solsticeRun(t, n, dir, "ci.yml")
	err := waitCmd(cmd, 6*time.Minute)
	text := out.String()
	if err != nil || !strings.Contains(text, "agent 42 from the driver") {
		t.Fatalf("solstice run: %v\n%s", err, text)
	}
	done := events()
	t.Logf("task events, bytes done: %v", done)
	checkGrowing(t, "task events", done)
	img, _ := testImage(t)
	if st, err := os.Stat(img); err != nil || done[len(done)-1] != st.Size() {
		t.Fatalf("the last download event says %d bytes, want the whole image (%v)", done[len(done)-1], err)
	}
	whole := imageMiB(t)
	if !strings.Contains(text, whole+" of "+whole+" (100%)") {
		t.Fatalf("solstice run did not print the download's end:\n%s", text)
	}
	var printed []int64
	for _, m := range regexp.MustCompile(`downloading image solstice-test: ([0-9.]+) MiB of ([0-9.]+) MiB`).FindAllStringSubmatch(text, -1) {
		mib, _ := strconv.ParseFloat(m[1], 64)
		printed = append(printed, int64(mib*(1<<20)))
	}
	checkGrowing(t, "solstice run output", printed)
	t.Logf("solstice run printed %d progress lines:\n%s", len(printed), text)
	agents, _ := filepath.Glob(filepath.Join(cache, "guest-agents", "*", "solstice-guest-linux-amd64"))
	if len(agents) != 1 {
		t.Fatalf("the embedded linux agent was not unpacked under cache_dir (found %v)", agents)
	}
}

// checkGrowing wants at least two reports, each larger than the last.
func checkGrowing(t *testing.T, what string, bytes []int64) {
	t.Helper()
	if len(bytes) < 2 {
		t.Fatalf("%s: %d download progress reports (%v), want several", what, len(bytes), bytes)
	}
	for i := 1; i < len(bytes); i++ {
		if bytes[i] <= bytes[i-1] {
			t.Fatalf("%s: byte counts %v do not grow", what, bytes)
		}
	}
}

// watchDownloadEvents polls the agent's allocations for the driver's
// download events (Nomad keeps only a task's last ten events, so they are
// collected while they happen). The returned func stops it and gives the
// byte counts seen, in order, each once.
func watchDownloadEvents(t *testing.T, n *Nomad) func() []int64 {
	var mu sync.Mutex
	var seen []int64
	known := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			allocs, _, _ := n.API.Allocations().List(&api.QueryOptions{})
			for _, a := range allocs {
				for _, ts := range a.TaskStates {
					for _, e := range ts.Events {
						key := fmt.Sprint(a.ID, e.Time)
						if e.Type != "Driver" || !strings.HasPrefix(e.DriverMessage, "Downloading image") || known[key] {
							continue
						}
						known[key] = true
						b, _ := strconv.ParseInt(e.Details["bytes_done"], 10, 64)
						mu.Lock()
						seen = append(seen, b)
						mu.Unlock()
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	stop := func() []int64 {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	t.Cleanup(func() { stop() })
	return stop
}

// imageList: the client that ran the job has the image in its cache, and
// solstice image list says so (after the driver's next fingerprint).
func imageList(t *testing.T, n *Nomad) {
	node, err := n.WaitNode(testContext(t, time.Minute), "solstice-vm")
	if err != nil {
		t.Fatal(err)
	}
	// The driver fingerprints as soon as an image enters its cache, and
	// Nomad passes node updates on within seconds.
	cached := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node.Name) + `\s+solstice-test\s+true\s+` + regexp.QuoteMeta(imageMiB(t)) + `\s+[0-9a-f]{64}$`)
	var out string
	for deadline := time.Now().Add(20 * time.Second); !cached.MatchString(out); time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			info, _, err := n.API.Nodes().Info(node.ID, nil)
			var attrs []string
			for k, v := range info.Attributes {
				if strings.Contains(k, "solstice-vm.image") {
					attrs = append(attrs, k+"="+v)
				}
			}
			t.Fatalf("image list does not show the cached image:\n%s\nnode attributes (%v): %v", out, err, attrs)
		}
		out, _, _ = cli(t, nil, "image", "list", "-address", n.Addr)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node.Name) + `\s+debian-test \(alias of solstice-test\)`).MatchString(out) {
		t.Fatalf("image list does not show the alias:\n%s", out)
	}
	t.Logf("solstice image list:\n%s", out)
}

// imageMiB is the test image's size as the CLI prints it.
func imageMiB(t *testing.T) string {
	img, _ := testImage(t)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20))
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// cli runs bin/solstice with env added to the environment (NOMAD_ADDR
// removed first, so a case names the cluster only as it says).
func cli(t *testing.T, extra []string, args ...string) (string, string, int) {
	return cliIn(t, t.TempDir(), extra, args...)
}

func cliIn(t *testing.T, dir string, extra []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extra...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("solstice %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func waitCmd(cmd *exec.Cmd, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		return fmt.Errorf("still running after %s", limit)
	}
}
