package guestssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// Streaming is a command that has begun to print on stdout.
type Streaming struct {
	io.Reader // its stdout, from the first byte on
	sess      *ssh.Session
	stderr    *capped
}

// Wait waits for the command to exit, as ssh.Session.Wait does: an
// *ssh.ExitError for a non-zero status.
func (s *Streaming) Wait() error { return s.sess.Wait() }

// Stderr is the start of what the command printed on stderr; read it
// after Wait.
func (s *Streaming) Stderr() string { return s.stderr.String() }

// Close ends the session.
func (s *Streaming) Close() error { return s.sess.Close() }

// errNoOutput is a command that was to become a stream but exited 0
// without printing anything.
var errNoOutput = errors.New("it exited without printing anything")

// Stream runs cmd with stdin and returns once cmd prints on stdout, so
// that a command which starts something and then reports on it is one
// session rather than two. A command that exits before printing returns
// what Output would (an *ExitError for a non-zero status) and no stream.
func (c *Client) Stream(ctx context.Context, cmd string, stdin io.Reader) (*Streaming, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open ssh session: %w", err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("open ssh session: %w", err)
	}
	s := &Streaming{sess: sess, stderr: &capped{max: maxStderr}}
	sess.Stderr, sess.Stdin = s.stderr, stdin
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("guest command %q: %w", cmd, err)
	}
	first := make(chan error, 1)
	var b [1]byte
	go func() {
		_, err := io.ReadFull(stdout, b[:])
		first <- err
	}()
	select {
	case err = <-first:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return nil, fmt.Errorf("guest command %q: %w", cmd, ctx.Err())
	}
	if err == nil {
		s.Reader = io.MultiReader(bytes.NewReader(b[:]), stdout)
		return s, nil
	}
	defer sess.Close()
	werr := sess.Wait()
	var ee *ssh.ExitError
	switch {
	case errors.As(werr, &ee):
		return nil, &ExitError{Command: cmd, Code: ee.ExitStatus(), Stderr: s.stderr.String()}
	case werr != nil && !errors.Is(werr, io.EOF):
		return nil, fmt.Errorf("guest command %q: %w", cmd, werr)
	}
	// Exit 0 (io.EOF is how Wait says so when the command left its stdin
	// unread), and nothing printed.
	return nil, fmt.Errorf("guest command %q: %w", cmd, errNoOutput)
}
