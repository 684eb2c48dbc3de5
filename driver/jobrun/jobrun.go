// Package jobrun runs a job plan inside a booted guest and brings its events
// home: it uploads the guest agent, the plan (and a repository bundle when
// there is one), starts the agent detached with the secrets on its stdin,
// then follows the agent's event stream over SSH. Every event is appended to
// the allocation's events.jsonl, whose byte size is also the resume offset,
// and rendered as readable text on the task's stdout.
package jobrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/agentdisk"
	"github.com/solstice-ci/solstice/driver/agentport"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/tailbuf"
)

// Files are the host-side inputs of a job.
type Files struct {
	Agent string // the solstice-guest build for the guest's OS
	// AgentDisk, when set, is the agent's disk attached to the VM: the
	// guest copies the agent from it, and Agent is uploaded over SSH only
	// when that fails.
	AgentDisk *agentdisk.Disk
	// NoDisk says why there is no AgentDisk, for the Shipped report.
	NoDisk string
	// AgentInPlace says the agent and its directories are in the guest
	// already (a warm clone's template put them there, see PlaceAgent).
	AgentInPlace bool
	// Port, when set, is a warm clone's agent port (the clone has its
	// identity already): the job starts through it, with no SSH session.
	// A job with a Bundle starts over SSH, so its clone has no Port.
	Port *agentport.Conn
	// AsRoot says the login user is root, who needs no sudo to read the
	// agent's disk.
	AsRoot  bool
	Plan    string
	Secrets string // JSON object of secret values; may be empty
	Bundle  string // a git bundle of the repository; may be empty
}

// Runner runs one task's job.
type Runner struct {
	Log    hclog.Logger
	SSH    func(ctx context.Context) (*guestssh.Client, error)
	Events string    // host path of events.jsonl
	Out    io.Writer // the task's stdout
	// MaxEvents bounds the events file; DefaultMaxEvents when zero.
	MaxEvents int64
	// Deadline is when the job has overrun (see Deadline): it is
	// cancelled then, and failed Grace later; zero means none.
	Deadline time.Time
	Grace    time.Duration // DeadlineMargin when zero
	render   renderer

	mu    sync.Mutex
	first io.ReadCloser // the launch's event stream, still to be followed

	// Tests replace the guest: its event stream and its cancel.
	open   contract.Source
	cancel func(context.Context) error
}

// Shipped says how the agent got into the guest, for the task's events.
type Shipped string

// Launch puts what the job needs into the guest and starts the agent
// detached, so the job goes on whatever happens to this SSH connection or
// this plugin. Each session costs the emulated guest a shell or more, so
// the first one does all it can: the directories, the plan, the agent from
// its disk and, when no bundle has to go in first, the agent's start.
func (r *Runner) Launch(ctx context.Context, f Files) (Shipped, error) {
	plan, err := os.ReadFile(f.Plan)
	if err != nil {
		return "", fmt.Errorf("read the plan %s: %w", f.Plan, err)
	}
	secrets, err := readSecrets(f.Secrets)
	if err != nil {
		return "", err
	}
	if f.Port != nil {
		if f.Bundle != "" {
			return "", errors.New("a job with a repository bundle cannot start through the agent port (the bundle goes over SSH)")
		}
		return r.launchOverPort(ctx, f.Port, plan, secrets)
	}
	c, err := r.SSH(ctx)
	if err != nil {
		return "", err
	}
	s := firstSession(f, plan)
	shipped, started, err := s.outcome(r.run(ctx, c, s.script, s.stdin(plan, secrets), s.starts))
	if err != nil {
		return "", err
	}
	if shipped == "" {
		if err := upload(ctx, c, f.Agent, contract.AgentPath); err != nil {
			return "", err
		}
		shipped = Shipped("uploaded over ssh (" + s.noDisk + ")")
	}
	if started {
		return shipped, nil
	}
	if f.Bundle != "" {
		if err := upload(ctx, c, f.Bundle, contract.GuestRoot+"/repo.bundle"); err != nil {
			return "", err
		}
	}
	if err := r.run(ctx, c, agentStart, secrets, true); err != nil {
		return "", fmt.Errorf("start the guest agent: %w", err)
	}
	return shipped, nil
}

// inPlace is how a clone's agent came in: its template put it in place;
// onPort, that it also started the job from the agent port.
const (
	inPlace Shipped = "in the guest already: its template copied it from the read-only agent disk"
	onPort  Shipped = inPlace + ", and it took the job on the agent port"
)

// launchOverPort starts the job through a clone's agent port, which then
// carries its events from offset 0: the first stream Follow reads.
func (r *Runner) launchOverPort(ctx context.Context, port *agentport.Conn, plan []byte, secrets io.Reader) (Shipped, error) {
	s, err := io.ReadAll(secrets)
	if err != nil {
		return "", fmt.Errorf("read job secrets: %w", err)
	}
	stream, err := port.Start(ctx, plan, s)
	if err != nil {
		return "", fmt.Errorf("start the guest agent: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first = sessionStream{Reader: exitReader{Reader: stream, wait: stream.Wait, stderr: stream.Stderr}, close: stream.Close}
	return onPort, nil
}

// agentStart starts the job detached, then follows its events: the
// session that starts the agent is the first event stream Follow reads,
// so the job's first step needs no second session and no second agent
// start in the guest.
var agentStart = contract.AgentCommand(contract.AgentRun, "--detach", "--follow", contract.GuestRoot+"/plan.json")

// run runs a launch session. One that starts the agent returns once the
// agent prints its first event, and keeps the session for Follow.
func (r *Runner) run(ctx context.Context, c *guestssh.Client, cmd string, stdin io.Reader, starts bool) error {
	if !starts {
		_, err := c.Output(ctx, cmd, stdin)
		return err
	}
	s, err := c.Stream(ctx, cmd, stdin)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first != nil {
		r.first.Close()
	}
	r.first = sessionStream{Reader: exitReader{Reader: s, wait: s.Wait, stderr: s.Stderr}, close: s.Close}
	return nil
}

// firstStream hands over the launch's event stream when Follow starts
// where it starts (offset 0), and ends it otherwise.
func (r *Runner) firstStream(ctx context.Context, offset int64) io.ReadCloser {
	r.mu.Lock()
	s := r.first
	r.first = nil
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	if offset != 0 {
		s.Close()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	return sessionStream{Reader: s, close: func() error { stop(); return s.Close() }}
}

// session is the job's first SSH session.
type session struct {
	script  string
	inPlace bool   // the agent is in the guest already
	disk    bool   // it copies the agent from its disk
	starts  bool   // it also starts the agent (the secrets are its stdin)
	noDisk  string // why not, when disk is false
}

// maxInlinePlan is the longest printf format (see guestssh.PrintfFormat) the first
// session's command carries the plan in, leaving its stdin to the secrets:
// a command is one argument of sh -c, and Linux takes 128 KiB at most.
const maxInlinePlan = 64 << 10

func firstSession(f Files, plan []byte) session {
	s := session{noDisk: f.NoDisk, inPlace: f.AgentInPlace, disk: f.AgentDisk != nil && !f.AgentInPlace}
	format := guestssh.PrintfFormat(plan)
	s.starts = (s.disk || s.inPlace) && f.Bundle == "" && len(format) <= maxInlinePlan
	copyAgent := ""
	if s.disk {
		copyAgent = f.AgentDisk.CopyScript()
	}
	inline := ""
	if s.starts {
		inline = format
	}
	if s.inPlace {
		s.script = inPlaceScript(contract.GuestRoot, inline)
	} else {
		s.script = prepareScript(contract.GuestRoot, inline, copyAgent, f.AsRoot)
	}
	if s.starts {
		s.script += "; exec " + agentStart
	}
	return s
}

// stdin is the plan, or the secrets when the plan is in the command.
func (s session) stdin(plan []byte, secrets io.Reader) io.Reader {
	if s.starts {
		return secrets
	}
	return bytes.NewReader(plan)
}

// outcome reads the first session's result: how the agent came in (""
// when it still has to be uploaded) and whether the agent is running.
func (s *session) outcome(err error) (Shipped, bool, error) {
	const fromDisk Shipped = "copied by the guest from the read-only agent disk"
	var ee *guestssh.ExitError
	switch {
	case err == nil && s.inPlace:
		return inPlace, s.starts, nil
	case err == nil && s.disk:
		return fromDisk, s.starts, nil
	case err == nil:
		return "", false, nil
	case errors.As(err, &ee) && ee.Code == prepareFailed:
		return "", false, fmt.Errorf("prepare the guest: %w", err)
	case s.disk && errors.As(err, &ee) && (ee.Code == diskNotFound || ee.Code == diskFailed):
		s.noDisk = diskFailure(ee)
		return "", false, nil
	case s.starts:
		return "", false, fmt.Errorf("start the guest agent: %w", err)
	default:
		return "", false, fmt.Errorf("prepare the guest: %w", err)
	}
}

// The first session's own exit statuses: the directories or the plan could
// not be written (a real failure), or the agent could not be copied from
// its disk, because no disk had it or otherwise (both fall back to an
// upload). Any other status is the agent's own, when the session starts it.
const (
	prepareFailed = 90
	diskNotFound  = 91
	diskFailed    = 92
)

// prepareScript makes the agent's directories under root and writes the
// plan: the inline one (a printf format, see guestssh.PrintfFormat), or
// else its stdin. Given a copy script (agentdisk's, run as root: through
// sudo -n unless asRoot), it then writes the agent from the disk into
// place. It exits 0 when all of that worked, or with one of its own
// statuses. It runs as few programs as it can (mkdir, the copy, chmod):
// each costs an emulated guest tens of milliseconds.
func prepareScript(root, inlinePlan, copyAgent string, asRoot bool) string {
	r := guestssh.ShellQuote(root)
	return fmt.Sprintf(`umask 077 && mkdir -p -m 700 %[1]s %[1]s/bin && %[2]s || exit %[3]d`,
		r, writePlan(r, inlinePlan), prepareFailed) + copyStep(root, copyAgent, asRoot)
}

// inPlaceScript only writes the plan: the directories and the agent are
// there already (a warm clone's template put them there).
func inPlaceScript(root, inlinePlan string) string {
	return fmt.Sprintf(`umask 077 && %s || exit %d`, writePlan(guestssh.ShellQuote(root), inlinePlan), prepareFailed)
}

// placeScript makes the directories and copies the agent, with no plan.
func placeScript(root, copyAgent string, asRoot bool) string {
	return fmt.Sprintf(`umask 077 && mkdir -p -m 700 %[1]s %[1]s/bin || exit %[2]d`,
		guestssh.ShellQuote(root), prepareFailed) + copyStep(root, copyAgent, asRoot)
}

// writePlan writes the plan under the quoted root r: the inline printf
// format, or else stdin.
func writePlan(r, inlinePlan string) string {
	write := "cat"
	if inlinePlan != "" {
		write = "printf " + guestssh.ShellQuote(inlinePlan)
	}
	return fmt.Sprintf("%s > %s/plan.json", write, r)
}

// copyStep copies the agent from its disk with copyAgent ("" for none).
func copyStep(root, copyAgent string, asRoot bool) string {
	if copyAgent == "" {
		return ""
	}
	sudo := "sudo -n "
	if asRoot {
		sudo = ""
	}
	a := guestssh.ShellQuote(root + "/bin/solstice-guest")
	return fmt.Sprintf(`; { %[1]ssh -c %[2]s > %[3]s && chmod 700 %[3]s; } || `+
		`{ rc=$?; rm -f %[3]s; [ $rc = %[4]d ] && exit %[5]d; exit %[6]d; }`,
		sudo, guestssh.ShellQuote(copyAgent), a, agentdisk.NotFoundExit, diskNotFound, diskFailed)
}

// PlaceAgent makes the agent's directories in the guest and copies the
// agent there from its disk, with no plan: a warm-start template does it
// before it is saved, so its clones start their jobs without the copy
// (about a second under TCG, most of it sudo and dd).
func PlaceAgent(ctx context.Context, c *guestssh.Client, disk agentdisk.Disk, asRoot bool) error {
	_, err := c.Output(ctx, placeScript(contract.GuestRoot, disk.CopyScript(), asRoot), nil)
	var ee *guestssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && (ee.Code == diskNotFound || ee.Code == diskFailed):
		return fmt.Errorf("put the agent in place: %s", diskFailure(ee))
	}
	return fmt.Errorf("put the agent in place: %w", err)
}

// diskFailure says why the guest could not copy the agent from its disk.
func diskFailure(ee *guestssh.ExitError) string {
	if ee.Code == diskNotFound {
		return "the guest found no agent disk"
	}
	msg := strings.TrimSpace(ee.Stderr)
	if len(msg) > 200 { // the guest's words, bounded
		msg = msg[:200]
	}
	return fmt.Sprintf("the guest could not copy the agent from its disk: exit %d: %q", ee.Code, msg)
}

func upload(ctx context.Context, c *guestssh.Client, local, remote string) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("open %s for upload: %w", local, err)
	}
	defer f.Close()
	return c.Upload(ctx, remote, 0o700, f)
}

// readSecrets returns the secrets file's content for the agent's stdin; an
// absent file means no secrets.
func readSecrets(p string) (io.Reader, error) {
	if p == "" {
		return strings.NewReader("{}"), nil
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return strings.NewReader("{}"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job secrets: %w", err)
	}
	if len(data) == 0 {
		data = []byte("{}")
	}
	return bytes.NewReader(data), nil
}

// Follow streams the agent's events from where events.jsonl ends until the
// job finishes, reconnecting when the connection drops, and returns the
// task exit code its conclusion means. It returns early only when ctx ends,
// the guest is gone (guestGone closed), the events file cannot be written,
// the guest writes a line too long to be an event, or the job breaks a
// bound (MaxEvents, Deadline): then the events file ends with an
// infra_error saying which.
func (r *Runner) Follow(ctx context.Context, guestGone <-chan struct{}) (int, error) {
	f, offset, err := openEvents(r.Events)
	if err != nil {
		return contract.ExitInfrastructure, err
	}
	defer f.Close()
	r.render.out = r.Out
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go r.watchDeadline(runCtx, stop)
	tail := contract.Tail{Open: r.agentStream, Resume: resumeChecked(&agentEnds{}, r.resume(guestGone))}
	if r.open != nil {
		tail.Open = r.open
	}
	code := contract.ExitInfrastructure
	w := lineWriter{f: f}
	_, err = tail.Run(runCtx, offset, func(line []byte, next int64) error {
		if err := r.checkSize(next); err != nil {
			return err
		}
		if err := w.write(line); err != nil {
			return fmt.Errorf("append to events file: %w", err)
		}
		if len(line) > maxDecoded {
			// Kept for the shims, which check it; nothing the driver
			// renders or acts on is this long (see maxDecoded).
			r.Log.Debug("event too long to render", "bytes", len(line), "offset", next)
			return nil
		}
		ev, err := decode(line)
		if err != nil {
			r.Log.Warn("undecodable event", "error", err)
			return nil
		}
		r.render.event(ev)
		var final bool
		if code, final = exitCode(ev); final {
			f.Sync()
			return contract.ErrStop
		}
		return nil
	})
	if err == nil {
		return code, nil
	}
	if cause := context.Cause(runCtx); ctx.Err() == nil {
		if _, ok := bounded(cause); ok {
			err = cause
		}
	}
	if b, ok := bounded(err); ok {
		r.Log.Error("the job broke a bound; ending it", "error", b)
		if err := appendInfraError(f, b.msg); err != nil {
			r.Log.Warn("could not record the failure in the events file", "error", err)
		}
	}
	return contract.ExitInfrastructure, err
}

// resume is the tail's policy when the SSH stream breaks: try again after
// a second, unless the VM is gone.
func (r *Runner) resume(guestGone <-chan struct{}) func(context.Context, int64, error) error {
	return func(ctx context.Context, offset int64, err error) error {
		r.Log.Warn("event stream interrupted; resuming", "offset", offset, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-guestGone:
			return errors.New("the VM went away before the job finished")
		case <-time.After(time.Second):
			return nil
		}
	}
}

// agentStream is the tail's source: the launch's own session the first
// time, then `solstice-guest follow --from offset` in a new SSH session,
// whose stdout is the guest's events file from that offset on.
func (r *Runner) agentStream(ctx context.Context, offset int64) (io.ReadCloser, error) {
	if s := r.firstStream(ctx, offset); s != nil {
		return s, nil
	}
	c, err := r.SSH(ctx)
	if err != nil {
		return nil, err
	}
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open an SSH session: %w", err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("open an SSH session: %w", err)
	}
	stderr := tailbuf.New(512)
	sess.Stderr = stderr
	cmd := contract.AgentCommand(contract.AgentFollow, "--from", strconv.FormatInt(offset, 10))
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start the agent's follow: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	return sessionStream{Reader: exitReader{Reader: stdout, wait: sess.Wait, stderr: stderr.String}, close: func() error { stop(); return sess.Close() }}, nil
}

// sessionStream reads a session's stdout; closing it ends the session.
type sessionStream struct {
	io.Reader
	close func() error
}

func (s sessionStream) Close() error { return s.close() }

// openEvents opens the host events file for appending and returns the
// resume offset: its size, after dropping a half-written last line.
func openEvents(p string) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("open events file: %w", err)
	}
	end, err := lastNewline(f)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, 0, err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, end, nil
}

// lastNewline is the length of the file up to and including its last '\n'.
func lastNewline(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// Cancel asks the agent to cancel the job: it stops the running step, runs
// the steps that run on cancellation, and finishes with "cancelled".
func (r *Runner) Cancel(ctx context.Context) error {
	c, err := r.SSH(ctx)
	if err != nil {
		return err
	}
	_, err = c.Output(ctx, contract.AgentCommand(contract.AgentCancel), nil)
	return err
}
