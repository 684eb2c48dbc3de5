package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/tailbuf"
)

// servedChild is the internal command a detaching `serve` re-executes
// itself with.
const servedChild = "__serve-detached"

// serveLog is the detached server's stderr, in its root.
const serveLog = "serve.log"

// Where serve finds its port by name. Images without udev have no
// /dev/virtio-ports/NAME links, but sysfs names every port. Tests point
// these elsewhere.
var (
	virtioPortsDir = "/sys/class/virtio-ports"
	devDir         = "/dev"
)

// hostPoll is how often serve looks again for a host on its port: a
// virtio port with no host reads as end of file at once.
var hostPoll = 20 * time.Millisecond

// stderrTail is how much of the end of the job's stderr its exit frame
// carries.
const stderrTail = 2 << 10

type serveFlags struct {
	root   string
	port   string
	user   string
	detach bool
}

func parseServeFlags(args []string, stderr io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := flag.NewFlagSet(contract.AgentServe, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.root, "root", contract.GuestRoot, "directory of the job")
	fs.StringVar(&f.port, "port", "", "the port's device (default: the virtio port named "+contract.AgentPortName+")")
	fs.StringVar(&f.user, "user", "", "start the job's process for this login user now, to wait for its job")
	fs.BoolVar(&f.detach, "detach", false, "serve in a session of its own and return once the port is open")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return f, err
	}
	if len(pos) > 0 {
		return f, errors.New("serve takes no arguments")
	}
	return f, nil
}

func cmdServe(args []string, stderr io.Writer) int {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "solstice-guest: %v\n%s\n", err, usage)
		return exitUsage
	}
	if f.detach {
		return detachServe(f, stderr)
	}
	port, err := openPort(f.port)
	if err != nil {
		fmt.Fprintf(stderr, "solstice-guest: serve: %v\n", err)
		return runner.ExitInfrastructure
	}
	return servePort(newServer(f, stderr), port)
}

// newServer is the server of the flags; with --user, its job's process
// is started now, so a clone's job needs no program start (see prespawn).
func newServer(f serveFlags, stderr io.Writer) *server {
	s := &server{root: f.root, sys: hostSystem(), log: stderr}
	warmUpFrames()
	if f.user != "" {
		s.prespawn(f.user)
	}
	return s
}

// warmUpFrames decodes an identity and a start as the host's will be, so
// that, in a template, the JSON decoders' tables are built before it is
// saved, not in each clone's first tenth of a second (see warmUp).
func warmUpFrames() {
	id, _ := json.Marshal(contract.Identity{Seed: make([]byte, 32)})
	decodeStrict(id, &contract.Identity{})
	start, _ := json.Marshal(contract.Start{Plan: []byte("{}"), Secrets: json.RawMessage("{}")})
	decodeStrict(start, &contract.Start{})
	contract.Identity{}.Validate()
}

// cmdServeChild is a detached server: it reports on fd 3 once its port is
// open, so the template is saved with the port already served.
func cmdServeChild(args []string, stderr io.Writer) int {
	ready := os.NewFile(3, "ready")
	f, err := parseServeFlags(args, stderr)
	var port *os.File
	if err == nil {
		port, err = openPort(f.port)
	}
	if err != nil {
		reportReady(ready, err)
		fmt.Fprintf(stderr, "solstice-guest: serve: %v\n", err)
		return runner.ExitInfrastructure
	}
	s := newServer(f, stderr)
	reportReady(ready, nil)
	return servePort(s, port)
}

func servePort(s *server, port *os.File) int {
	defer port.Close()
	defer s.cancelPending()
	s.logf("serving %s", port.Name())
	if err := s.serve(port, port); err != nil {
		s.logf("%v", err)
		return runner.ExitInfrastructure
	}
	return 0
}

// detachServe starts the server in a session of its own (it outlives the
// SSH session that starts it) and returns once its port is open.
func detachServe(f serveFlags, stderr io.Writer) int {
	if err := startServeDetached(f); err != nil {
		fmt.Fprintf(stderr, "solstice-guest: serve: detach: %v\n", err)
		return runner.ExitInfrastructure
	}
	return 0
}

func startServeDetached(f serveFlags) error {
	logPath := filepath.Join(f.root, serveLog)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logFile.Close()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	args := []string{servedChild, "--root", f.root}
	if f.port != "" {
		args = append(args, "--port", f.port)
	}
	if f.user != "" {
		args = append(args, "--user", f.user)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = logFile // stdin and stdout: /dev/null
	cmd.ExtraFiles = []*os.File{readyW}
	newSession(cmd)
	err = cmd.Start()
	readyW.Close() // the child holds its own copy now
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	err = awaitReady(readyR, "the server exited before it opened its port (see "+logPath+")")
	cmd.Process.Release()
	return err
}

// openPort opens the agent port: path, or else the virtio port named
// contract.AgentPortName.
func openPort(path string) (*os.File, error) {
	if path == "" {
		var err error
		if path, err = findAgentPort(); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open the agent port: %w", err)
	}
	return f, nil
}

// findAgentPort returns the device of the virtio port named
// contract.AgentPortName, as sysfs names it.
func findAgentPort() (string, error) {
	entries, err := os.ReadDir(virtioPortsDir)
	if err != nil {
		return "", fmt.Errorf("list virtio ports: %w", err)
	}
	for _, e := range entries {
		name, err := os.ReadFile(filepath.Join(virtioPortsDir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(name)) == contract.AgentPortName {
			return filepath.Join(devDir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("no virtio port named %s in %s", contract.AgentPortName, virtioPortsDir)
}

// hostReader reads the port, waiting for a host: until the first byte
// arrives, reading nothing means nobody is connected yet (the template is
// saved and restored in this state), so it tries again. After that, end
// of file means the host left.
type hostReader struct {
	r       io.Reader
	every   time.Duration
	started bool
}

func (h *hostReader) Read(p []byte) (int, error) {
	for {
		n, err := h.r.Read(p)
		if n > 0 {
			h.started = true
		}
		if n > 0 || h.started || (err != nil && err != io.EOF) {
			return n, err
		}
		time.Sleep(h.every)
	}
}

// sysCalls are the system calls an identity makes; tests record them.
type sysCalls interface {
	SetClock(unixNano int64) error
	Reseed(seed []byte) error // mix seed into the kernel's pool, then reseed from it
	SetHostname(name string) error
	Signal(pid int, sig syscall.Signal) error
	// Spawn starts a program without waiting for it; fs.ErrNotExist when
	// it is not installed.
	Spawn(argv ...string) error
}

// system is all serve changes outside its job directory: files under
// root ("" for the real system, a temp dir in tests) and the calls.
type system struct {
	root  string
	calls sysCalls
	// spawn starts the job's process under root detached, as u (as u's
	// SSH login would run `run --detach plan`); it waits for its Start.
	spawn func(u login, root, plan string) (waitingJob, error)
}

// path is the system path p under sys.root.
func (sys system) path(p string) string { return filepath.Join(sys.root, p) }

// waitingJob is a detached job's process, started ahead of its job.
type waitingJob interface {
	Start(secrets []byte) error // the plan is in place: run it
	Cancel()                    // no job comes
}

// server serves one host on the agent port.
type server struct {
	root    string // the job directory (--root)
	sys     system
	log     io.Writer
	user    string // the login user, once an identity is applied
	settled sync.Once
	// pending is the job's process started in the template for
	// pendingUser, waiting for a clone's job.
	pending     waitingJob
	pendingUser string
}

// prespawn starts the job's process for user ahead of its job, in the
// template: a clone's job then starts without a program start (its
// runtime's start costs an emulated guest a tenth of a second or more).
// The process holds no job and claims nothing until Start; it only waits.
func (s *server) prespawn(user string) {
	u, err := lookupLogin(s.sys.root, user)
	if err == nil {
		s.pending, err = s.sys.spawn(u, s.root, s.planPath())
	}
	if err != nil {
		s.logf("no job process waits for %s: %v", user, err)
		return
	}
	s.pendingUser = user
	s.logf("a job process waits for %s", user)
}

// cancelPending ends a waiting job process no job came for.
func (s *server) cancelPending() {
	if s.pending != nil {
		s.pending.Cancel()
		s.pending = nil
	}
}

func (s *server) planPath() string { return filepath.Join(s.root, "plan.json") }

// settle tells the guest's daemons about the new identity once: a fresh
// DHCP lease, and sshd re-executed with the task's host key. Both cost an
// emulated guest's one vCPU a few tenths of a second, so a job's start
// comes first: settle runs once its first events are on their way, or
// when the port is released or left (then SSH is the driver's way in).
func (s *server) settle() {
	s.settled.Do(func() {
		if s.user == "" {
			return // no identity was applied
		}
		if err := s.sys.settle(); err != nil {
			s.logf("%v", err)
		}
	})
}

func (s *server) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "%s solstice-guest: serve: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// serve answers the host's frames: an identity, then a job to start or a
// release. It returns nil when serve should exit 0: released, the host
// left, or the job's follower ended and its exit was sent.
func (s *server) serve(port io.Reader, w io.Writer) error {
	r := bufio.NewReader(&hostReader{r: port, every: hostPoll})
	for {
		kind, payload, err := contract.ReadFrame(r)
		switch {
		case err == io.EOF:
			s.logf("the host left")
			s.settle()
			return nil
		case errors.Is(err, contract.ErrFrame):
			return s.refuse(w, err)
		case err != nil:
			return fmt.Errorf("read the port: %w", err)
		case kind == contract.FrameRelease:
			s.logf("released")
			s.settle()
			return nil
		case kind == contract.FrameIdentity && s.user == "":
			if err := s.identify(payload); err != nil {
				return s.refuse(w, err)
			}
			if err := contract.WriteFrame(w, contract.FrameOK, nil); err != nil {
				return fmt.Errorf("answer the identity: %w", err)
			}
		case kind == contract.FrameStart && s.user != "":
			return s.start(r, w, payload)
		default:
			return s.refuse(w, fmt.Errorf("unexpected %s frame", kind))
		}
	}
}

// refuse answers an error frame; the driver then boots cold, so serve
// exits non-zero.
func (s *server) refuse(w io.Writer, cause error) error {
	msg := []byte(cause.Error())
	if len(msg) > contract.PortMaxError {
		msg = msg[:contract.PortMaxError]
	}
	if err := contract.WriteFrame(w, contract.FrameError, msg); err != nil {
		return fmt.Errorf("%w (and answering it: %v)", cause, err)
	}
	return cause
}

func (s *server) identify(payload []byte) error {
	start := time.Now()
	var id contract.Identity
	if err := decodeStrict(payload, &id); err != nil {
		return fmt.Errorf("decode the identity: %w", err)
	}
	if err := id.Validate(); err != nil {
		return err
	}
	decoded := time.Since(start)
	times, err := s.sys.applyIdentity(id)
	if err != nil {
		return err
	}
	s.user = id.User
	s.logf("identity %s applied in %s (decode %s, %s)", id.Hostname, time.Since(start).Round(time.Millisecond),
		decoded.Round(time.Millisecond), times)
	return nil
}

// decodeStrict decodes one JSON value with no unknown fields and nothing
// after it: a driver and agent out of step fail loudly.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// start runs the job and relays its events until its follower exits. If
// the host leaves first, serve ends and the job runs on (the driver can
// still follow it over SSH).
func (s *server) start(r *bufio.Reader, w io.Writer, payload []byte) error {
	left := s.watchHost(r)
	done := make(chan error, 1)
	go func() { done <- s.runJob(w, payload) }()
	select {
	case err := <-done:
		return err
	case <-left:
		s.logf("the host left during the job; the job runs on")
		return nil
	}
}

// watchHost closes the returned channel when the host leaves. The host
// sends nothing while a job runs: anything it does send is logged.
func (s *server) watchHost(r *bufio.Reader) <-chan struct{} {
	left := make(chan struct{})
	go func() {
		for {
			kind, _, err := contract.ReadFrame(r)
			if err == io.EOF {
				close(left)
				return
			}
			if err != nil {
				s.logf("stop reading the port during the job: %v", err)
				return
			}
			s.logf("ignored a %s frame during the job", kind)
		}
	}()
	return left
}

// runJob starts the job and follows its events file from offset 0 onto
// the port, as `run --detach --follow` does over SSH, but with one agent
// start in the guest instead of two: serve is running already.
func (s *server) runJob(w io.Writer, payload []byte) error {
	if err := s.startJob(payload); err != nil {
		s.settle()
		s.sendExit(w, contract.Exit{Code: runner.ExitInfrastructure, Stderr: err.Error()})
		return err
	}
	out := &frameWriter{w: w, first: s.settle}
	stderr := tailbuf.New(stderrTail)
	code := followEvents(s.root, 0, out, stderr)
	if out.err != nil {
		return out.err
	}
	s.logf("the job's event stream ended (%d)", code)
	return s.sendExit(w, contract.Exit{Code: code, Stderr: string(stderr.Bytes())})
}

// startJob writes the plan and starts the job as the login user.
func (s *server) startJob(payload []byte) error {
	var st contract.Start
	if err := decodeStrict(payload, &st); err != nil {
		return fmt.Errorf("decode the start: %w", err)
	}
	u, err := lookupLogin(s.sys.root, s.user)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.planPath(), st.Plan, 0o600, &u); err != nil {
		return fmt.Errorf("write the plan: %w", err)
	}
	job := s.pending
	s.pending = nil
	if job == nil || s.pendingUser != u.name {
		if job != nil {
			job.Cancel()
		}
		if job, err = s.sys.spawn(u, s.root, s.planPath()); err != nil {
			return fmt.Errorf("start the job as %s: %w", u.name, err)
		}
	}
	if err := job.Start(st.Secrets); err != nil {
		return fmt.Errorf("start the job as %s: %w", u.name, err)
	}
	return nil
}

// frameWriter sends what the follower prints as data frames, each write
// as soon as it comes (the follower flushes every event): the driver shows
// steps as they happen. first runs after the first frame is sent.
type frameWriter struct {
	w     io.Writer
	first func()
	sent  bool
	err   error // the port failed: the follower stops, the job runs on
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for rest := p; len(rest) > 0; {
		n := min(len(rest), contract.PortMaxData)
		if err := contract.WriteFrame(f.w, contract.FrameData, rest[:n]); err != nil {
			f.err = fmt.Errorf("send the job's events: %w", err)
			return 0, f.err
		}
		rest = rest[n:]
	}
	if !f.sent {
		f.sent = true
		f.first()
	}
	return len(p), nil
}

// sendExit sends the exit frame, dropping the start of its stderr while
// the frame is over its limit (JSON escapes can grow it sixfold).
func (s *server) sendExit(w io.Writer, ex contract.Exit) error {
	for {
		err := contract.WriteJSONFrame(w, contract.FrameExit, ex)
		if !errors.Is(err, contract.ErrFrame) || ex.Stderr == "" {
			if err != nil {
				return fmt.Errorf("send the job's exit: %w", err)
			}
			return nil
		}
		ex.Stderr = ex.Stderr[len(ex.Stderr)/2:]
	}
}

// login is a user as /etc/passwd and /etc/group have it: the parts a
// login uses.
type login struct {
	name, home, shell string
	uid, gid          int
	groups            []int // all its groups, the primary one first
}

// lookupLogin reads name's entry from the passwd file under sysRoot (not
// through os/user: tests keep their passwd in a temp dir).
func lookupLogin(sysRoot, name string) (login, error) {
	path := filepath.Join(sysRoot, "/etc/passwd")
	data, err := os.ReadFile(path)
	if err != nil {
		return login{}, fmt.Errorf("look up user %s: %w", name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return login{}, fmt.Errorf("look up user %s: bad ids in %s", name, path)
		}
		u := login{name: name, uid: uid, gid: gid, home: f[5], shell: f[6]}
		u.groups = groupsOf(sysRoot, name, gid)
		return u, nil
	}
	return login{}, fmt.Errorf("look up user %s: not in %s", name, path)
}

// groupsOf is gid and the groups that list name as a member.
func groupsOf(sysRoot, name string, gid int) []int {
	groups := []int{gid}
	data, _ := os.ReadFile(filepath.Join(sysRoot, "/etc/group")) // none: the primary group only
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 {
			continue
		}
		g, err := strconv.Atoi(f[2])
		if err != nil || g == gid {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if strings.TrimSpace(m) == name {
				groups = append(groups, g)
				break
			}
		}
	}
	return groups
}

// loginEnv is the environment an SSH login of u starts with: sshd's own
// variables, then pam_env's files (which override them, as in a login).
func loginEnv(sysRoot string, u login) []string {
	path := "/usr/local/bin:/usr/bin:/bin:/usr/games"
	if u.uid == 0 {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	shell := u.shell
	if shell == "" {
		shell = "/bin/sh"
	}
	env := []string{"HOME=" + u.home, "USER=" + u.name, "LOGNAME=" + u.name, "SHELL=" + shell, "PATH=" + path}
	for _, f := range []string{"/etc/environment", "/etc/default/locale"} {
		env = append(env, envFile(filepath.Join(sysRoot, f))...)
	}
	return dedupEnv(env)
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envFile reads NAME=value lines (optionally quoted, optionally after
// "export"); anything else in the file is ignored, as pam_env does.
func envFile(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var env []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		name, value, ok := strings.Cut(line, "=")
		if !ok || !envNameRe.MatchString(name) {
			continue
		}
		env = append(env, name+"="+unquote(strings.TrimSpace(value)))
	}
	return env
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// dedupEnv keeps each name once, with its last value, where it first was.
func dedupEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := index[name]; ok {
			out[i] = kv
			continue
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	return out
}

// writeFileAtomic replaces path with data (mode exactly, owned by owner
// if given): a reader sees the old file or the new one. No fsync: a clone
// lives for one job.
func writeFileAtomic(path string, data []byte, mode os.FileMode, owner *login) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = writeAndClose(f, data, mode, owner)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeAndClose(f *os.File, data []byte, mode os.FileMode, owner *login) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // not the umask's mode
	}
	if err == nil && owner != nil {
		err = f.Chown(owner.uid, owner.gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
