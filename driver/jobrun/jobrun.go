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
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Files are the host-side inputs of a job.
type Files struct {
	Agent   string // the solstice-guest build for the guest's OS
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

	// Tests replace the guest: its event stream and its cancel.
	open   contract.Source
	cancel func(context.Context) error
}

// Launch uploads what the job needs and starts the agent detached, so the
// job goes on whatever happens to this SSH connection or this plugin.
func (r *Runner) Launch(ctx context.Context, f Files) error {
	c, err := r.SSH(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Output(ctx, "mkdir -p "+contract.GuestRoot+"/bin && chmod 700 "+contract.GuestRoot, nil); err != nil {
		return fmt.Errorf("prepare the guest: %w", err)
	}
	uploads := []struct{ local, remote string }{
		{f.Agent, contract.AgentPath},
		{f.Plan, contract.GuestRoot + "/plan.json"},
		{f.Bundle, contract.GuestRoot + "/repo.bundle"},
	}
	for _, u := range uploads {
		if u.local == "" {
			continue
		}
		if err := upload(ctx, c, u.local, u.remote); err != nil {
			return err
		}
	}
	secrets, err := readSecrets(f.Secrets)
	if err != nil {
		return err
	}
	cmd := contract.AgentCommand(contract.AgentRun, "--detach", contract.GuestRoot+"/plan.json")
	if _, err := c.Output(ctx, cmd, secrets); err != nil {
		return fmt.Errorf("start the guest agent: %w", err)
	}
	return nil
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

// agentStream is the tail's source: `solstice-guest follow --from offset`
// in a new SSH session, whose stdout is the guest's events file from that
// offset on.
func (r *Runner) agentStream(ctx context.Context, offset int64) (io.ReadCloser, error) {
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
	stderr := &tailBuffer{max: 512}
	sess.Stderr = stderr
	cmd := contract.AgentCommand(contract.AgentFollow, "--from", strconv.FormatInt(offset, 10))
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start the agent's follow: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	return sessionStream{Reader: exitReader{Reader: stdout, wait: sess.Wait, stderr: stderr}, close: func() error { stop(); return sess.Close() }}, nil
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
