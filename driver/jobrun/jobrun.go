// Package jobrun runs a job plan inside a booted guest and brings its events
// home: it uploads the guest agent, the plan (and a repository bundle when
// there is one), starts the agent detached with the secrets on its stdin,
// then follows the agent's event stream over SSH. Every event is appended to
// the allocation's events.jsonl, whose byte size is also the resume offset,
// and rendered as readable text on the task's stdout.
package jobrun

import (
	"bufio"
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
	render renderer
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
// task exit code its conclusion means. It returns early only when ctx ends
// or the guest is gone (guestGone closed).
func (r *Runner) Follow(ctx context.Context, guestGone <-chan struct{}) (int, error) {
	f, offset, err := openEvents(r.Events)
	if err != nil {
		return contract.ExitInfrastructure, err
	}
	defer f.Close()
	r.render.out = r.Out
	for {
		code, done, err := r.followOnce(ctx, f, &offset)
		if done {
			return code, nil
		}
		r.Log.Warn("event stream interrupted; resuming", "offset", offset, "error", err)
		select {
		case <-ctx.Done():
			return contract.ExitInfrastructure, ctx.Err()
		case <-guestGone:
			return contract.ExitInfrastructure, errors.New("the VM went away before the job finished")
		case <-time.After(time.Second):
		}
	}
}

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

func (r *Runner) followOnce(ctx context.Context, f *os.File, offset *int64) (int, bool, error) {
	c, err := r.SSH(ctx)
	if err != nil {
		return 0, false, err
	}
	sess, err := c.NewSession()
	if err != nil {
		return 0, false, err
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return 0, false, err
	}
	cmd := contract.AgentCommand(contract.AgentFollow, "--from", strconv.FormatInt(*offset, 10))
	if err := sess.Start(cmd); err != nil {
		return 0, false, err
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	br := bufio.NewReaderSize(stdout, 256*1024)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return 0, false, fmt.Errorf("read events: %w", err)
		}
		if _, err := f.Write(line); err != nil {
			return 0, false, fmt.Errorf("append to events file: %w", err)
		}
		*offset += int64(len(line))
		ev, err := decode(line)
		if err != nil {
			r.Log.Warn("undecodable event", "error", err)
			continue
		}
		r.render.event(ev)
		if code, final := exitCode(ev); final {
			f.Sync()
			return code, true, nil
		}
	}
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
