package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/crypto/ssh"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/internal/tailbuf"
)

// ExecTask runs a command inside the guest (Nomad's script checks use it).
// What the command prints is the guest's and may be endless: like Nomad's
// own executors, it keeps the last drivers.CheckBufSize bytes of each
// stream.
func (d *Driver) ExecTask(id string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	stdout, stderr := tailbuf.New(drivers.CheckBufSize), tailbuf.New(drivers.CheckBufSize)
	res, err := d.ExecTaskStreaming(ctx, id, &drivers.ExecOptions{
		Command: cmd,
		Stdin:   io.NopCloser(strings.NewReader("")),
		Stdout:  nopWriteCloser{stdout},
		Stderr:  nopWriteCloser{stderr},
	})
	if err != nil {
		return nil, err
	}
	return &drivers.ExecTaskResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitResult: res}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ExecTaskStreaming backs `nomad alloc exec`: the command runs in the guest
// over the task's SSH connection, with a terminal when one is asked for.
func (d *Driver) ExecTaskStreaming(ctx context.Context, id string, opts *drivers.ExecOptions) (*drivers.ExitResult, error) {
	h, err := d.handle(id)
	if err != nil {
		return nil, err
	}
	if len(opts.Command) == 0 {
		return nil, errors.New("exec: no command given")
	}
	c, err := h.SSH(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec in guest: %w", err)
	}
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("exec in guest: open session: %w", err)
	}
	defer sess.Close()
	if opts.Tty {
		if err := sess.RequestPty("xterm-256color", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return nil, fmt.Errorf("exec in guest: allocate a terminal: %w", err)
		}
		go forwardResizes(ctx, sess, opts.ResizeCh)
	}
	return runSession(ctx, sess, opts)
}

func runSession(ctx context.Context, sess *ssh.Session, opts *drivers.ExecOptions) (*drivers.ExitResult, error) {
	sess.Stdout, sess.Stderr = opts.Stdout, opts.Stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, err
	}
	go func() {
		if opts.Stdin != nil {
			io.Copy(stdin, opts.Stdin)
		}
		stdin.Close()
	}()
	if err := sess.Start(shellCommand(opts.Command)); err != nil {
		return nil, fmt.Errorf("exec in guest: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		return nil, ctx.Err()
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return &drivers.ExitResult{ExitCode: 0}, nil
	case errors.As(err, &ee):
		return &drivers.ExitResult{ExitCode: ee.ExitStatus()}, nil
	default:
		return nil, fmt.Errorf("exec in guest: %w", err)
	}
}

func forwardResizes(ctx context.Context, sess *ssh.Session, ch <-chan drivers.TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-ch:
			if !ok {
				return
			}
			sess.WindowChange(sz.Height, sz.Width)
		}
	}
}

// shellCommand quotes each argument: SSH carries one command string, which
// the guest's login shell splits again.
func shellCommand(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = guestssh.ShellQuote(a)
	}
	return strings.Join(q, " ")
}
