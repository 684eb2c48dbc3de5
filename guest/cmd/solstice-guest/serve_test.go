package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
)

// recorder stands in for the system calls: it records them.
type recorder struct {
	mu        sync.Mutex
	calls     []string
	installed map[string]bool  // programs Spawn finds
	fail      map[string]error // by method name
}

func (r *recorder) record(method, call string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[method]; err != nil {
		return err
	}
	r.calls = append(r.calls, call)
	return nil
}

func (r *recorder) SetClock(ns int64) error { return r.record("SetClock", fmt.Sprint("clock ", ns)) }
func (r *recorder) Reseed(seed []byte) error {
	return r.record("Reseed", fmt.Sprintf("reseed %d bytes", len(seed)))
}
func (r *recorder) SetHostname(name string) error { return r.record("SetHostname", "hostname "+name) }
func (r *recorder) Signal(pid int, sig syscall.Signal) error {
	return r.record("Signal", fmt.Sprintf("signal %d %v", pid, sig))
}
func (r *recorder) Spawn(argv ...string) error {
	if !r.installed[argv[0]] {
		return fs.ErrNotExist
	}
	return r.record("Spawn", "spawn "+strings.Join(argv, " "))
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func testIdentity() contract.Identity {
	return contract.Identity{
		UnixNano: 1700000000123456789, Seed: bytes.Repeat([]byte{7}, 64),
		MachineID: strings.Repeat("ab", 16), Hostname: "task-1", InstanceID: "alloc-1",
		User: "tester", AuthorizedKey: "ssh-ed25519 AAAAtask task@host",
		HostKeyPEM: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
		HostKeyPub: "ssh-ed25519 AAAAhost",
	}
}

// templateRoot is a temp dir laid out like a template's system, with the
// test's own user as the login user (so chown needs no root).
func templateRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":                       fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\ntester:x:%d:%d::/home/tester:/bin/bash\n", os.Getuid(), os.Getgid()),
		"etc/group":                        "wheel:x:54321:root,tester\nother:x:54322:root\n",
		"etc/ssh/sshd_config":              "keep\n",
		"etc/ssh/ssh_host_ed25519_key":     "template key\n",
		"etc/ssh/ssh_host_ed25519_key.pub": "template pub\n",
		"etc/ssh/ssh_host_rsa_key":         "template rsa\n",
		"etc/hosts":                        "127.0.0.1 localhost\n127.0.1.1 template\n::1 localhost\n",
		"etc/hostname":                     "template\n",
		"etc/machine-id":                   "0123\n",
		"run/solstice/user-data":           "seed\n",
		"run/solstice/seed.tsv":            "seed\n",
		"run/solstice/keep":                "keep\n",
		"run/udhcpc.eth0.pid":              "4242\n",
		"run/sshd.pid":                     "77\n",
		"var/lib/cloud/data/instance-id":   "template\n",
		"home/tester/.ssh/authorized_keys": "template login key\n",
	}
	for name, content := range files {
		writeTestFile(t, filepath.Join(root, name), content, 0o644)
	}
	os.Chmod(filepath.Join(root, "home/tester/.ssh/authorized_keys"), 0o640)
	return root
}

func writeTestFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// session is a server on a pair of pipes, the test being the host.
type session struct {
	t    *testing.T
	in   *io.PipeWriter // host → agent
	out  *bufio.Reader  // agent → host
	done chan error
}

func startSession(t *testing.T, s *server) *session {
	t.Helper()
	hostR, hostW := io.Pipe()
	agentR, agentW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.serve(hostR, agentW)
		agentW.Close()
		done <- err
	}()
	t.Cleanup(func() {
		hostW.Close()
		agentR.Close()
	})
	return &session{t: t, in: hostW, out: bufio.NewReader(agentR), done: done}
}

func (ss *session) send(kind string, v any) {
	ss.t.Helper()
	var err error
	switch p := v.(type) {
	case nil:
		err = contract.WriteFrame(ss.in, kind, nil)
	case []byte:
		err = contract.WriteFrame(ss.in, kind, p)
	default:
		err = contract.WriteJSONFrame(ss.in, kind, v)
	}
	if err != nil {
		ss.t.Fatalf("send %s: %v", kind, err)
	}
}

func (ss *session) recv() (string, []byte) {
	ss.t.Helper()
	kind, payload, err := contract.ReadFrame(ss.out)
	if err == io.EOF {
		return "", nil
	}
	if err != nil {
		ss.t.Fatalf("read the agent's frame: %v", err)
	}
	return kind, payload
}

func (ss *session) wait() error {
	ss.t.Helper()
	select {
	case err := <-ss.done:
		return err
	case <-time.After(10 * time.Second):
		ss.t.Fatal("serve did not return")
		return nil
	}
}

func newTestServer(t *testing.T, sysRoot string, rec *recorder) *server {
	return &server{root: t.TempDir(), sys: system{root: sysRoot, calls: rec, spawn: noJob}, log: io.Discard}
}

func noJob(login, string, string) (waitingJob, error) { return nil, errors.New("no job in this test") }

// fakeJob stands in for the detached job's process: Start runs start.
type fakeJob struct {
	start     func(secrets []byte) error
	cancelled bool
}

func (j *fakeJob) Start(secrets []byte) error { return j.start(secrets) }
func (j *fakeJob) Cancel()                    { j.cancelled = true }

func linuxOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("identity reset is implemented for Linux guests only")
	}
}

type wantFile struct {
	path, content string
	mode          os.FileMode
}

func checkFiles(t *testing.T, root string, files []wantFile) {
	t.Helper()
	for _, f := range files {
		path := filepath.Join(root, f.path)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		data, _ := os.ReadFile(path)
		if string(data) != f.content || fi.Mode() != f.mode {
			t.Errorf("%s: %q mode %v, want %q mode %v", f.path, data, fi.Mode(), f.content, f.mode)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && strings.HasPrefix(f.path, "home/") && int(st.Uid) != os.Getuid() {
			t.Errorf("%s: owned by %d, want %d", f.path, st.Uid, os.Getuid())
		}
	}
}

func TestServeAppliesIdentity(t *testing.T) {
	linuxOnly(t)
	id := testIdentity()
	common := []wantFile{
		{"etc/ssh/ssh_host_ed25519_key", id.HostKeyPEM + "\n", 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", id.HostKeyPub + "\n", 0o644},
		{"etc/ssh/sshd_config", "keep\n", 0o644},
		{"etc/hostname", "task-1\n", 0o644},
		{"etc/hosts", "127.0.0.1 localhost\n127.0.1.1 task-1\n::1 localhost\n", 0o644},
		{"etc/machine-id", id.MachineID + "\n", 0o444},
		{"var/lib/cloud/data/instance-id", "alloc-1\n", 0o644},
		{"run/solstice/keep", "keep\n", 0o644},
	}
	keyLine := id.AuthorizedKey + "\n"
	tests := []struct {
		name      string
		setup     func(t *testing.T, root string)
		installed map[string]bool
		files     []wantFile
		calls     []string
	}{
		{
			name:  "udhcpc and an sshd pid file; authorized_keys rewritten in place",
			files: []wantFile{{"home/tester/.ssh/authorized_keys", keyLine, 0o640}},
			calls: []string{"signal 4242 user defined signal 1", "signal 77 hangup"},
		},
		{
			name: "systemd; no .ssh",
			setup: func(t *testing.T, root string) {
				os.RemoveAll(filepath.Join(root, "home/tester/.ssh"))
				os.Remove(filepath.Join(root, "run/udhcpc.eth0.pid"))
				os.Remove(filepath.Join(root, "run/sshd.pid"))
				writeTestFile(t, filepath.Join(root, "lib/systemd/system/ssh.service"), "", 0o644)
			},
			installed: map[string]bool{"dhclient": true, "systemctl": true},
			files: []wantFile{
				{"home/tester/.ssh", "", 0o700 | fs.ModeDir},
				{"home/tester/.ssh/authorized_keys", keyLine, 0o600},
			},
			calls: []string{"spawn dhclient -1", "spawn systemctl reload ssh"},
		},
		{
			name: "authorized_keys a symlink; networkd",
			setup: func(t *testing.T, root string) {
				keys := filepath.Join(root, "home/tester/.ssh/authorized_keys")
				os.Remove(keys)
				writeTestFile(t, filepath.Join(root, "elsewhere"), "untouched\n", 0o644)
				os.Symlink(filepath.Join(root, "elsewhere"), keys)
				os.Remove(filepath.Join(root, "run/udhcpc.eth0.pid"))
			},
			installed: map[string]bool{"networkctl": true, "dhclient": true},
			files: []wantFile{
				{"home/tester/.ssh/authorized_keys", keyLine, 0o600},
				{"elsewhere", "untouched\n", 0o644},
			},
			calls: []string{"spawn networkctl renew --all", "signal 77 hangup"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := templateRoot(t)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			rec := &recorder{installed: tc.installed}
			ss := startSession(t, newTestServer(t, root, rec))
			ss.send(contract.FrameIdentity, id)
			if kind, payload := ss.recv(); kind != contract.FrameOK {
				t.Fatalf("answer %s %q, want ok", kind, payload)
			}
			ss.send(contract.FrameRelease, nil)
			if err := ss.wait(); err != nil {
				t.Fatalf("serve after release: %v", err)
			}
			checkFiles(t, root, append(slices.Clone(common), tc.files...))
			for _, gone := range []string{"etc/ssh/ssh_host_rsa_key", "run/solstice/user-data", "run/solstice/seed.tsv"} {
				if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the template's %s is still there", gone)
				}
			}
			want := append([]string{"clock 1700000000123456789", "reseed 64 bytes", "hostname task-1"}, tc.calls...)
			if got := rec.recorded(); !slices.Equal(got, want) {
				t.Errorf("calls %q, want %q", got, want)
			}
		})
	}
}

func TestServeRefuses(t *testing.T) {
	linuxOnly(t)
	badID := testIdentity()
	badID.MachineID = "not hex"
	unknownField := []byte(`{"unix_nano":1,"surprise":true}`)
	tests := []struct {
		name   string
		fail   map[string]error
		frames func(ss *session)
		ok     bool   // an ok answer comes first
		want   string // in the error frame
	}{
		{"identity fails Validate", nil, func(ss *session) { ss.send(contract.FrameIdentity, badID) }, false, "machine_id"},
		{"identity with an unknown field", nil, func(ss *session) { ss.send(contract.FrameIdentity, unknownField) }, false, "surprise"},
		{"garbage", nil, func(ss *session) { io.WriteString(ss.in, "hello there\n") }, false, "bad frame"},
		{"start before identity", nil, func(ss *session) { ss.send(contract.FrameStart, contract.Start{}) }, false, "unexpected start frame"},
		{"an agent's frame", nil, func(ss *session) { ss.send(contract.FrameOK, nil) }, false, "unexpected ok frame"},
		{"identity twice", nil, func(ss *session) {
			ss.send(contract.FrameIdentity, testIdentity())
			ss.send(contract.FrameIdentity, testIdentity())
		}, true, "unexpected identity frame"},
		{"reseed fails", map[string]error{"Reseed": errors.New("ioctl: EPERM")}, func(ss *session) {
			ss.send(contract.FrameIdentity, testIdentity())
		}, false, "EPERM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := startSession(t, newTestServer(t, templateRoot(t), &recorder{fail: tc.fail}))
			go tc.frames(ss)
			kind, payload := ss.recv()
			if tc.ok {
				if kind != contract.FrameOK {
					t.Fatalf("first answer %s %q, want ok", kind, payload)
				}
				kind, payload = ss.recv()
			}
			if kind != contract.FrameError || !strings.Contains(string(payload), tc.want) {
				t.Errorf("answer %s %q, want an error naming %q", kind, payload, tc.want)
			}
			if err := ss.wait(); err == nil {
				t.Error("serve returned nil after an error answer: want non-zero")
			}
		})
	}
}

func TestServeEnds(t *testing.T) {
	tests := []struct {
		name   string
		frames func(ss *session)
	}{
		{"release first", func(ss *session) { ss.send(contract.FrameRelease, nil) }},
		{"host leaves after the identity", func(ss *session) {
			ss.send(contract.FrameIdentity, testIdentity())
			ss.in.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "identity") {
				linuxOnly(t)
			}
			ss := startSession(t, newTestServer(t, templateRoot(t), &recorder{}))
			go tc.frames(ss)
			for kind, _ := ss.recv(); kind != ""; kind, _ = ss.recv() {
				if kind != contract.FrameOK {
					t.Errorf("answer %s", kind)
				}
			}
			if err := ss.wait(); err != nil {
				t.Errorf("serve: %v, want exit 0", err)
			}
		})
	}
}

// TestServeStartsJob: serve starts the job as the login user and follows
// its events file onto the port from offset 0, each event as it comes,
// then the follower's exit; sshd and the lease are told of the identity
// only once the first events are on their way.
func TestServeStartsJob(t *testing.T) {
	linuxOnly(t)
	for _, tc := range []struct {
		name     string
		prespawn bool
	}{{"started for the job", false}, {"started in the template", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				user       login
				root, plan string
				secrets    string
				spawned    int
			}
			first := `{"seq":1,"type":"job_started"}` + "\n"
			last := `{"seq":2,"type":"job_finished","conclusion":"success"}` + "\n"
			rec := &recorder{}
			s := newTestServer(t, templateRoot(t), rec)
			release := make(chan struct{})
			s.sys.spawn = func(u login, root, plan string) (waitingJob, error) {
				got.user, got.root, got.plan = u, root, plan
				got.spawned++
				// The detached job's stand-in: this process is its pid, and it
				// writes its first event now and the last once the host saw it.
				return &fakeJob{start: func(secrets []byte) error {
					got.secrets = string(secrets)
					if data, _ := os.ReadFile(plan); string(data) != "PLAN" {
						t.Errorf("the job started before its plan was in place (%q)", data)
					}
					layout := runner.NewLayout(root)
					os.WriteFile(layout.PID, []byte(strconv.Itoa(os.Getpid())), 0o644)
					os.WriteFile(layout.Events, []byte(first), 0o644)
					go func() {
						<-release
						f, _ := os.OpenFile(layout.Events, os.O_WRONLY|os.O_APPEND, 0)
						f.WriteString(last)
						f.Close()
					}()
					return nil
				}}, nil
			}
			if tc.prespawn {
				s.prespawn("tester")
			}
			ss := startSession(t, s)
			ss.send(contract.FrameIdentity, testIdentity())
			if kind, _ := ss.recv(); kind != contract.FrameOK {
				t.Fatalf("identity answered %s", kind)
			}
			if calls := rec.recorded(); slices.Contains(calls, "signal 77 hangup") {
				t.Errorf("sshd was told before the job started: %q", calls)
			}
			ss.send(contract.FrameStart, contract.Start{Plan: []byte("PLAN"), Secrets: json.RawMessage(`{"TOKEN":"x"}`)})
			if kind, payload := ss.recv(); kind != contract.FrameData || string(payload) != first {
				t.Fatalf("first frame %s %q, want the first event before the job ends", kind, payload)
			}
			close(release)
			var data []byte
			kind, payload := ss.recv()
			for ; kind == contract.FrameData; kind, payload = ss.recv() {
				data = append(data, payload...)
			}
			var ex contract.Exit
			if kind != contract.FrameExit || json.Unmarshal(payload, &ex) != nil || ex != (contract.Exit{}) {
				t.Errorf("last frame %s %q, want exit 0", kind, payload)
			}
			if string(data) != last {
				t.Errorf("data %q, want the last event", data)
			}
			if err := ss.wait(); err != nil {
				t.Errorf("serve: %v, want exit 0", err)
			}
			checkFiles(t, s.root, []wantFile{{"plan.json", "PLAN", 0o600}})
			if got.user.name != "tester" || got.user.home != "/home/tester" || got.root != s.root || got.plan != filepath.Join(s.root, "plan.json") || got.secrets != `{"TOKEN":"x"}` {
				t.Errorf("job for %+v in %s with %s and %q", got.user, got.root, got.plan, got.secrets)
			}
			if calls := rec.recorded(); !slices.Contains(calls, "signal 77 hangup") {
				t.Errorf("sshd was never told of the new host key: %q", calls)
			}
			if got.spawned != 1 {
				t.Errorf("the job's process was started %d times, want once", got.spawned)
			}
		})
	}
}

// TestServeCancelsTheWaitingJob: a job process started in the template
// for a job that never comes (released, or the clone's user is another)
// is ended, never started.
func TestServeCancelsTheWaitingJob(t *testing.T) {
	linuxOnly(t)
	for _, user := range []string{"tester", "root"} {
		t.Run(user, func(t *testing.T) {
			s := newTestServer(t, templateRoot(t), &recorder{})
			waiting := &fakeJob{start: func([]byte) error { t.Error("the waiting job started"); return nil }}
			s.sys.spawn = func(login, string, string) (waitingJob, error) { return waiting, nil }
			s.prespawn(user)
			if s.pending == nil {
				t.Fatalf("no job process waits for %s", user)
			}
			s.sys.spawn = noJob
			ss := startSession(t, s)
			ss.send(contract.FrameIdentity, testIdentity())
			ss.recv()
			if user == "tester" {
				ss.send(contract.FrameRelease, nil)
				ss.wait()
				s.cancelPending() // as servePort does when serve ends
			} else {
				ss.send(contract.FrameStart, contract.Start{Plan: []byte("PLAN")})
				ss.recv() // the exit: no job in this test
				ss.wait()
			}
			if !waiting.cancelled {
				t.Error("the waiting job process was not ended")
			}
		})
	}
}

func TestServeStartFails(t *testing.T) {
	linuxOnly(t)
	tests := []struct {
		name  string
		start any
		want  string
	}{
		{"the job does not start", contract.Start{Plan: []byte("PLAN")}, "no job in this test"},
		{"a bad start", []byte(`{"plan":"UExBTg==","extra":1}`), "decode the start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := startSession(t, newTestServer(t, templateRoot(t), &recorder{}))
			ss.send(contract.FrameIdentity, testIdentity())
			ss.recv()
			ss.send(contract.FrameStart, tc.start)
			kind, payload := ss.recv()
			var ex contract.Exit
			if kind != contract.FrameExit || json.Unmarshal(payload, &ex) != nil || ex.Code != 3 || !strings.Contains(ex.Stderr, tc.want) {
				t.Errorf("answer %s %q, want exit 3 naming %q", kind, payload, tc.want)
			}
			if err := ss.wait(); err == nil {
				t.Error("serve returned nil")
			}
		})
	}
}

// scripted is a port whose reads return what it is given, in turn.
type scripted struct {
	reads []string // "" is a read of nothing (end of file)
	calls int
}

func (s *scripted) Read(p []byte) (int, error) {
	s.calls++
	if len(s.reads) == 0 {
		return 0, io.EOF
	}
	r := s.reads[0]
	s.reads = s.reads[1:]
	if r == "" {
		return 0, io.EOF
	}
	if r == "!" {
		return 0, errors.New("port unplugged")
	}
	return copy(p, r), nil
}

func TestHostReader(t *testing.T) {
	tests := []struct {
		name  string
		reads []string
		want  []string // each Read's data, "EOF" or "error"
	}{
		{"waits for the host", []string{"", "", "", "ab", "c", ""}, []string{"ab", "c", "EOF"}},
		{"the host leaves", []string{"a", "", "b"}, []string{"a", "EOF"}},
		{"errors pass", []string{"", "!"}, []string{"error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hostReader{r: &scripted{reads: tc.reads}, every: time.Microsecond}
			var got []string
			for range tc.want {
				buf := make([]byte, 8)
				n, err := h.Read(buf)
				switch {
				case n > 0:
					got = append(got, string(buf[:n]))
				case err == io.EOF:
					got = append(got, "EOF")
				default:
					got = append(got, "error")
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("reads %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFindAgentPort(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	defer func(s, d string) { virtioPortsDir, devDir = s, d }(virtioPortsDir, devDir)
	virtioPortsDir, devDir = sys, dev
	if _, err := findAgentPort(); err == nil {
		t.Error("found a port where there is none")
	}
	writeTestFile(t, filepath.Join(sys, "vport0p1/name"), "org.qemu.guest_agent.0\n", 0o644)
	writeTestFile(t, filepath.Join(sys, "vport1p1/name"), contract.AgentPortName+"\n", 0o644)
	if got, err := findAgentPort(); err != nil || got != filepath.Join(dev, "vport1p1") {
		t.Errorf("port %q %v, want %s", got, err, filepath.Join(dev, "vport1p1"))
	}
}

func TestHostsWith(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1 localhost\n127.0.1.1 old\n::1 x\n", "127.0.0.1 localhost\n127.0.1.1 new\n::1 x\n"},
		{"127.0.1.1\told\n127.0.1.1 again\n# c", "127.0.1.1 new\n# c\n"},
		{"127.0.0.1 localhost\n", "127.0.0.1 localhost\n127.0.1.1 new\n"},
		{"", "127.0.1.1 new\n"},
		{"127.0.1.10 other\n", "127.0.1.10 other\n127.0.1.1 new\n"},
	}
	for _, tc := range tests {
		if got := string(hostsWith([]byte(tc.in), "new")); got != tc.want {
			t.Errorf("hostsWith(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoginAndEnv(t *testing.T) {
	root := t.TempDir()
	writeTestFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nci:x:1000:1000::/home/ci:\n", 0o644)
	writeTestFile(t, filepath.Join(root, "etc/group"), "ci:x:1000:\nsudo:x:27:ci\ndocker:x:999:root, ci\nx:y\n", 0o644)
	writeTestFile(t, filepath.Join(root, "etc/environment"), "PATH=\"/opt/bin:/usr/bin\"\n# comment\nbad line\nexport EDITOR='vi'\n", 0o644)
	writeTestFile(t, filepath.Join(root, "etc/default/locale"), "LANG=C.UTF-8\n", 0o644)
	tests := []struct {
		user   string
		groups []int
		env    []string
	}{
		{"ci", []int{1000, 27, 999}, []string{"HOME=/home/ci", "USER=ci", "LOGNAME=ci", "SHELL=/bin/sh", "PATH=/opt/bin:/usr/bin", "EDITOR=vi", "LANG=C.UTF-8"}},
		{"root", []int{0, 999}, []string{"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh", "PATH=/opt/bin:/usr/bin", "EDITOR=vi", "LANG=C.UTF-8"}},
	}
	for _, tc := range tests {
		u, err := lookupLogin(root, tc.user)
		if err != nil || !slices.Equal(u.groups, tc.groups) {
			t.Errorf("%s: %+v %v, want groups %v", tc.user, u, err, tc.groups)
		}
		if env := loginEnv(root, u); !slices.Equal(env, tc.env) {
			t.Errorf("%s: env %q, want %q", tc.user, env, tc.env)
		}
	}
	if _, err := lookupLogin(root, "nobody"); err == nil {
		t.Error("found a user not in passwd")
	}
	os.Remove(filepath.Join(root, "etc/environment"))
	u, _ := lookupLogin(root, "root")
	if env := loginEnv(root, u); !slices.Contains(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("root's env %q has not root's PATH", env)
	}
}

func TestSendExitFitsTheFrame(t *testing.T) {
	var buf bytes.Buffer
	s := &server{log: io.Discard}
	long := strings.Repeat("<\x01", 2<<10) + "the end"
	if err := s.sendExit(&buf, contract.Exit{Code: 1, Stderr: long}); err != nil {
		t.Fatal(err)
	}
	kind, payload, err := contract.ReadFrame(bufio.NewReader(&buf))
	var ex contract.Exit
	if err != nil || kind != contract.FrameExit || json.Unmarshal(payload, &ex) != nil {
		t.Fatalf("frame %s %v", kind, err)
	}
	if ex.Code != 1 || !strings.HasSuffix(ex.Stderr, "the end") || len(ex.Stderr) >= len(long) {
		t.Errorf("exit %d with %d bytes of stderr, want 1 and the end of it", ex.Code, len(ex.Stderr))
	}
}

// serve --detach returns once the port is open, and the server serves it
// in the background (here a file holding a release frame).
func TestServeDetach(t *testing.T) {
	root := t.TempDir()
	port := filepath.Join(t.TempDir(), "port")
	writeTestFile(t, port, "release 0\n", 0o644)
	cmd := agent(contract.AgentServe, "--root", root, "--port", port, "--detach")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) != 0 || stderr.Len() != 0 {
		t.Fatalf("serve --detach: %v, stdout %q, stderr %q: want exit 0 and silence", err, out, stderr.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(root, serveLog))
		if bytes.Contains(log, []byte("released")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached server did not serve the release; its log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}

	missing := filepath.Join(t.TempDir(), "none")
	cmd = agent(contract.AgentServe, "--root", root, "--port", missing, "--detach")
	stderr.Reset()
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if code := exitCode(err); code != 3 || len(out) != 0 || !strings.Contains(stderr.String(), missing) {
		t.Errorf("exit %d, stdout %q, stderr %q: want 3 naming the port", code, out, stderr.String())
	}
}
