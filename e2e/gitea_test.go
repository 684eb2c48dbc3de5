//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// GiteaVersion is the forge the shim is tested against (make gitea).
const GiteaVersion = "1.26.1"

// Gitea is a real Gitea server owned by one test. It runs on a host of its
// own: a network namespace the test creates, reached over a veth pair at
// 10.210.<n>.2, so a QEMU guest reaches it through user-mode NAT like a
// real forge (never through the host's loopback). That is a private
// address: guests reach it because test clients allow-list giteaNet, as an
// operator would an internal forge.
type Gitea struct {
	URL   string // ROOT_URL, http://10.210.<n>.2:3000/
	Addr  string // 10.210.<n>.2
	User  string // the admin user
	Token string // the admin's API token (all scopes)

	t       *testing.T
	bin     string
	dir     string
	config  string
	netns   string
	hostIf  string
	cmd     *exec.Cmd
	logPath string
}

// StartGitea creates the namespace, configures and starts Gitea in it, and
// creates an admin user with an API token. Gitea is stopped by PID and the
// namespace deleted when the test ends, whether it passed or not.
func StartGitea(t *testing.T) *Gitea {
	t.Helper()
	g := &Gitea{t: t, bin: env(t, "SOLSTICE_GITEA"), dir: t.TempDir(), User: "e2e"}
	t.Cleanup(g.cleanup)
	g.makeNetns()
	g.writeConfig()
	g.cli("migrate")
	g.cli("admin", "user", "create", "--admin", "--username", g.User, "--password", "e2e-Passw0rd-x", "--email", "e2e@example.invalid", "--must-change-password=false")
	g.Token = g.newToken("e2e")
	g.startWeb()
	g.waitToken()
	return g
}

func (g *Gitea) newToken(name string) string {
	return lastLine(g.cli("admin", "user", "generate-access-token", "--username", g.User, "--token-name", name, "--scopes", "all", "--raw"))
}

// waitToken waits until the admin's token opens the API. Once in a few
// hundred starts Gitea answered its first admin call with 401 "token is
// required" although the token came from its own CLI: the token is tried
// for a few seconds, then one made anew, before the test gives up.
func (g *Gitea) waitToken() {
	g.t.Helper()
	var err error
	for try := 1; try <= 20; try++ {
		if err = g.api("GET", "user", nil, 200, nil); err == nil {
			return
		}
		if try == 10 {
			g.t.Logf("the admin token does not open the API (%v); making another", err)
			g.Token = g.newToken("e2e-2")
		}
		time.Sleep(500 * time.Millisecond)
	}
	g.t.Fatalf("gitea: the admin token does not open the API: %v", err)
}

// makeNetns picks a free 10.210.<n>.0/24 and wires a namespace to it.
func (g *Gitea) makeNetns() {
	n := g.freeSubnet()
	g.netns = fmt.Sprintf("solstice-gitea-%d", n)
	g.hostIf, g.Addr = fmt.Sprintf("sgh%d", n), fmt.Sprintf("10.210.%d.2", n)
	peer := fmt.Sprintf("sgg%d", n)
	for _, args := range [][]string{
		{"netns", "add", g.netns},
		{"link", "add", g.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", g.netns},
		{"addr", "add", fmt.Sprintf("10.210.%d.1/24", n), "dev", g.hostIf},
		{"link", "set", g.hostIf, "up"},
		{"-n", g.netns, "addr", "add", g.Addr + "/24", "dev", peer},
		{"-n", g.netns, "link", "set", peer, "up"},
		{"-n", g.netns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			g.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	g.URL = fmt.Sprintf("http://%s:3000/", g.Addr)
}

// freeSubnet returns an n whose 10.210.n.0/24 no interface or namespace
// uses yet.
func (g *Gitea) freeSubnet() int {
	addrs, _ := exec.Command("ip", "-o", "addr").Output()
	nss, _ := exec.Command("ip", "netns", "list").Output()
	b := make([]byte, 1)
	for range 100 {
		rand.Read(b)
		n := 1 + int(b[0])%250
		if !bytes.Contains(addrs, fmt.Appendf(nil, "10.210.%d.", n)) && !bytes.Contains(nss, fmt.Appendf(nil, "solstice-gitea-%d", n)) {
			return n
		}
	}
	g.t.Fatal("no free 10.210.n.0/24 subnet")
	return 0
}

// lastLine is the last non-empty line of a command's output (Gitea warns
// about running as root on stdout first).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// staticRoot is Gitea's source in the module cache: the binary is built
// without bindata, so templates, locales and assets come from there.
func (g *Gitea) staticRoot() string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		g.t.Fatalf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "code.gitea.io", "gitea@v"+GiteaVersion)
	if _, err := os.Stat(filepath.Join(dir, "options", "locale")); err != nil {
		g.t.Fatalf("Gitea's source is not in the module cache (make gitea puts it there): %v", err)
	}
	return dir
}

func (g *Gitea) writeConfig() {
	g.config = filepath.Join(g.dir, "app.ini")
	ini := fmt.Sprintf(`APP_NAME = Solstice e2e
RUN_MODE = prod
WORK_PATH = %[1]s
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
HTTP_ADDR = %[2]s
HTTP_PORT = 3000
ROOT_URL = %[3]s
DISABLE_SSH = true
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = %[4]s
APP_DATA_PATH = %[1]s/data

[database]
DB_TYPE = sqlite3
PATH = %[1]s/data/gitea.db

[repository]
ROOT = %[1]s/repos

[security]
INSTALL_LOCK = true
SECRET_KEY = %[5]s
INTERNAL_TOKEN = %[6]s

[service]
DISABLE_REGISTRATION = true

[actions]
ENABLED = true

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[log]
MODE = file
LEVEL = Info
ROOT_PATH = %[1]s/log

[cron.update_checker]
ENABLED = false

[mailer]
ENABLED = false
`, g.dir, g.Addr, g.URL, g.staticRoot(), randomHex(32), g.internalToken())
	if err := os.WriteFile(g.config, []byte(ini), 0o600); err != nil {
		g.t.Fatal(err)
	}
}

func (g *Gitea) internalToken() string {
	out, err := exec.Command(g.bin, "generate", "secret", "INTERNAL_TOKEN").Output()
	if err != nil {
		g.t.Fatalf("gitea generate secret: %v", err)
	}
	return lastLine(string(out))
}

// cli runs a gitea command against the test's config and returns stdout.
func (g *Gitea) cli(args ...string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"--config", g.config, "--work-path", g.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true", "HOME="+g.dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("gitea %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// startWeb starts `gitea web` inside the namespace and waits until it is
// healthy.
func (g *Gitea) startWeb() {
	g.logPath = filepath.Join(g.dir, "web.log")
	logf, err := os.Create(g.logPath)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command("ip", "netns", "exec", g.netns, g.bin, "--config", g.config, "--work-path", g.dir, "web")
	g.cmd.Env = append(os.Environ(), "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true", "HOME="+g.dir)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		g.t.Fatalf("start gitea web: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(g.URL + "api/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				g.t.Logf("gitea %s pid %d at %s (netns %s)", GiteaVersion, g.cmd.Process.Pid, g.URL, g.netns)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.t.Fatalf("gitea did not become healthy within a minute:\n%s", g.logTail())
}

func (g *Gitea) logTail() string {
	data, _ := os.ReadFile(g.logPath)
	logs, _ := filepath.Glob(filepath.Join(g.dir, "log", "*.log"))
	for _, l := range logs {
		d, _ := os.ReadFile(l)
		data = append(data, d...)
	}
	return tail(string(data), 80)
}

// Stop stops the server by PID (TERM, then KILL after 10 s).
func (g *Gitea) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	pid := g.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL) // its own process group: ip netns exec and gitea
		<-done
	}
	g.cmd = nil
}

// Restart starts the stopped server again (an outage ends).
func (g *Gitea) Restart() { g.startWeb() }

func (g *Gitea) cleanup() {
	if g.t.Failed() && g.logPath != "" {
		g.t.Logf("gitea log:\n%s", g.logTail())
	}
	g.Stop()
	if g.netns != "" {
		if out, err := exec.Command("ip", "netns", "del", g.netns).CombinedOutput(); err != nil {
			g.t.Logf("ip netns del %s: %v %s", g.netns, err, out)
		}
		exec.Command("ip", "link", "del", g.hostIf).Run() // gone with the peer normally
	}
}

// API calls /api/v1/<path> as the admin and decodes the JSON answer into
// out (if not nil). want is the expected status code.
func (g *Gitea) API(method, path string, body any, want int, out any) {
	g.t.Helper()
	if err := g.api(method, path, body, want, out); err != nil {
		g.t.Fatal(err)
	}
}

func (g *Gitea) api(method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, g.URL+"api/v1/"+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+g.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(data)
		return nil
	}
	return json.Unmarshal(data, out)
}

// CreateRepo creates a repository of the admin with a first commit.
func (g *Gitea) CreateRepo(name string) {
	g.API("POST", "user/repos", map[string]any{"name": name, "auto_init": true, "default_branch": "main"}, 201, nil)
}

// PushFile commits a file through the contents API; the commit is a push,
// which is what triggers workflows.
func (g *Gitea) PushFile(repo, path, content string) {
	g.API("POST", fmt.Sprintf("repos/%s/%s/contents/%s", g.User, repo, path), map[string]any{
		"content": base64.StdEncoding.EncodeToString([]byte(content)), "message": "add " + path, "branch": "main",
	}, 201, nil)
}

// PushFiles commits several new files in one commit (one push). Two
// quick pushes can start a workflow twice: Gitea detects workflows at the
// branch's head when it gets to the push event, which may already be the
// second commit.
func (g *Gitea) PushFiles(repo string, files map[string]string) {
	var ops []map[string]any
	for path, content := range files {
		ops = append(ops, map[string]any{"operation": "create", "path": path, "content": base64.StdEncoding.EncodeToString([]byte(content))})
	}
	g.API("POST", fmt.Sprintf("repos/%s/%s/contents", g.User, repo), map[string]any{
		"files": ops, "message": fmt.Sprintf("add %d files", len(ops)), "branch": "main",
	}, 201, nil)
}

// UpdateFile replaces a file's content in a new commit (another push).
func (g *Gitea) UpdateFile(repo, path, content string) {
	var meta struct {
		SHA string `json:"sha"`
	}
	url := fmt.Sprintf("repos/%s/%s/contents/%s", g.User, repo, path)
	g.API("GET", url, nil, 200, &meta)
	g.API("PUT", url, map[string]any{
		"content": base64.StdEncoding.EncodeToString([]byte(content)), "message": "update " + path, "branch": "main", "sha": meta.SHA,
	}, 200, nil)
}

// RegistrationToken returns an instance-wide runner registration token.
func (g *Gitea) RegistrationToken() string {
	var out struct{ Token string }
	g.API("POST", "admin/actions/runners/registration-token", nil, 200, &out)
	if out.Token == "" {
		g.t.Fatal("no registration token")
	}
	return out.Token
}

// GiteaJob is a workflow job as /api/v1 shows it.
type GiteaJob struct {
	ID          int64     `json:"id"`
	RunID       int64     `json:"run_id"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Conclusion  string    `json:"conclusion"`
	RunnerName  string    `json:"runner_name"`
	StartedAt   time.Time `json:"started_at"`
	CompletedAt time.Time `json:"completed_at"`
	Steps       []struct {
		Name       string `json:"name"`
		Number     int    `json:"number"`
		Status     string `json:"status"`
		Conclusion string `json:"conclusion"`
	} `json:"steps"`
}

// Jobs lists a repository's workflow jobs.
func (g *Gitea) Jobs(repo string) []GiteaJob {
	var out struct {
		Jobs []GiteaJob `json:"jobs"`
	}
	g.API("GET", fmt.Sprintf("repos/%s/%s/actions/jobs", g.User, repo), nil, 200, &out)
	return out.Jobs
}

// WaitJobsDone waits until n jobs exist and all are completed.
func (g *Gitea) WaitJobsDone(repo string, n int, limit time.Duration) []GiteaJob {
	g.t.Helper()
	deadline := time.Now().Add(limit)
	var jobs []GiteaJob
	for time.Now().Before(deadline) {
		jobs = g.Jobs(repo)
		done := len(jobs) >= n
		for _, j := range jobs {
			done = done && j.Status == "completed"
		}
		if done {
			return jobs
		}
		time.Sleep(250 * time.Millisecond)
	}
	g.t.Fatalf("jobs of %s not completed within %s: %+v", repo, limit, jobs)
	return nil
}

// JobLog returns a job's log as the web UI's download gives it.
func (g *Gitea) JobLog(repo string, job int64) string {
	var s string
	g.API("GET", fmt.Sprintf("repos/%s/%s/actions/jobs/%d/logs", g.User, repo, job), nil, 200, &s)
	return s
}
