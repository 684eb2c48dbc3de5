// Package agentport is the driver's side of a warm clone's agent port: the
// virtio-serial port on which the agent its template left running (see
// contract.AgentServe) takes the clone's identity and starts its job, with
// no SSH login, shell or sudo in an emulated guest. QEMU gets one end of a
// socket pair as the port's backend; the driver keeps the other, so no
// path, permission or other process stands between them.
//
// Everything the port brings back is the guest's word: frames are bounded
// by contract.ReadFrame, and every read and write is bounded in time by
// the caller's context.
package agentport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Conn is the driver's end of one clone's agent port.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// Pair makes a port: the end QEMU inherits (see qemu.Spec.AgentPort; the
// caller closes it once QEMU has started) and the driver's.
func Pair() (*os.File, *Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("make the agent port's socket pair: %w", err)
	}
	qemuEnd := os.NewFile(uintptr(fds[0]), "agent-port-qemu")
	ours := os.NewFile(uintptr(fds[1]), "agent-port")
	defer ours.Close() // FileConn keeps its own descriptor
	c, err := net.FileConn(ours)
	if err != nil {
		qemuEnd.Close()
		return nil, nil, fmt.Errorf("open the agent port: %w", err)
	}
	return qemuEnd, New(c), nil
}

// New wraps a connection to a port (tests pass one end of net.Pipe).
func New(c net.Conn) *Conn { return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)} }

// Close ends the connection; the agent sees its host leave.
func (c *Conn) Close() error { return c.c.Close() }

// bound makes ctx's end interrupt the connection's reads and writes, until
// the returned stop.
func (c *Conn) bound(ctx context.Context) (stop func()) {
	if d, ok := ctx.Deadline(); ok {
		c.c.SetDeadline(d)
	}
	after := context.AfterFunc(ctx, func() { c.c.Close() })
	return func() {
		after()
		c.c.SetDeadline(time.Time{})
	}
}

// Identify gives the clone its identity and waits for the agent's answer.
func (c *Conn) Identify(ctx context.Context, id contract.Identity) error {
	defer c.bound(ctx)()
	if err := contract.WriteJSONFrame(c.c, contract.FrameIdentity, id); err != nil {
		return fmt.Errorf("send the clone its identity: %w", ctxErr(ctx, err))
	}
	kind, payload, err := contract.ReadFrame(c.r)
	switch {
	case err != nil:
		return fmt.Errorf("read the agent's answer to the identity: %w", ctxErr(ctx, err))
	case kind == contract.FrameOK:
		return nil
	case kind == contract.FrameError:
		return fmt.Errorf("the agent could not apply the identity: %s", guestText(payload))
	}
	return fmt.Errorf("the agent answered the identity with a %s frame", kind)
}

// Release tells the agent nothing more comes over the port (the job will
// start over SSH), and closes it.
func (c *Conn) Release(ctx context.Context) error {
	defer c.Close()
	defer c.bound(ctx)()
	if err := contract.WriteFrame(c.c, contract.FrameRelease, nil); err != nil {
		return fmt.Errorf("release the agent port: %w", ctxErr(ctx, err))
	}
	return nil
}

// Start sends the job and returns its event stream once the agent has
// sent the first of it: the bytes of the guest's events file from offset
// 0. A start that fails before then is an *ExitError.
func (c *Conn) Start(ctx context.Context, plan, secrets []byte) (*Stream, error) {
	stop := c.bound(ctx)
	start := contract.Start{Plan: plan, Secrets: json.RawMessage(secrets)}
	if err := contract.WriteJSONFrame(c.c, contract.FrameStart, start); err != nil {
		stop()
		return nil, fmt.Errorf("send the job to the agent: %w", ctxErr(ctx, err))
	}
	s := &Stream{c: c}
	if err := s.next(); err != nil {
		stop()
		c.Close()
		if errors.Is(err, io.EOF) {
			return nil, s.exit
		}
		return nil, fmt.Errorf("start the job through the agent port: %w", ctxErr(ctx, err))
	}
	stop()
	return s, nil
}

// Stream is a job's event stream from the port. Read ends with io.EOF
// at the agent's exit frame; Exit then tells how the agent's follower
// ended. Close (or the Close of the Conn) stops it.
type Stream struct {
	c    *Conn
	mu   sync.Mutex
	buf  []byte
	exit *ExitError
}

// Read reads the stream; it returns io.EOF after the exit frame.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) == 0 {
		if s.exit != nil {
			return 0, io.EOF
		}
		if err := s.next(); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// next reads one frame into the stream: data into buf; exit into exit
// (and io.EOF). A stream that ends between frames without an exit broke.
func (s *Stream) next() error {
	kind, payload, err := contract.ReadFrame(s.c.r)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	switch kind {
	case contract.FrameData:
		s.buf = payload
		return nil
	case contract.FrameExit:
		var e contract.Exit
		if err := json.Unmarshal(payload, &e); err != nil {
			return fmt.Errorf("%w: exit frame: %v", contract.ErrFrame, err)
		}
		s.exit = &ExitError{Code: e.Code, Stderr: guestText([]byte(e.Stderr))}
		return io.EOF
	}
	return fmt.Errorf("%w: a %s frame in the event stream", contract.ErrFrame, kind)
}

// Wait is how the agent's follower ended once Read returned io.EOF: nil
// for status 0, else its *ExitError.
func (s *Stream) Wait() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exit == nil || s.exit.Code == 0 {
		return nil
	}
	return s.exit
}

// Stderr is the end of what the follower wrote to stderr.
func (s *Stream) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exit == nil {
		return ""
	}
	return s.exit.Stderr
}

// Close ends the stream and the port.
func (s *Stream) Close() error { return s.c.Close() }

// ExitError is the agent's follower ending with a status other than 0.
type ExitError struct {
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("the agent's run exited with %d: %s", e.Code, strings.TrimSpace(e.Stderr))
}

// ExitStatus is the follower's exit status.
func (e *ExitError) ExitStatus() int { return e.Code }

// guestText is the guest's words made safe for a message: valid UTF-8,
// at most 1 KiB.
func guestText(b []byte) string {
	const max = 1024
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}

// ctxErr prefers the context's reason over the closed connection's. The
// connection's deadline is the context's, and may pass a moment before
// the context says so.
func ctxErr(ctx context.Context, err error) error {
	cause := ctx.Err()
	if d, ok := ctx.Deadline(); cause == nil && ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		cause = context.DeadlineExceeded
	}
	if cause != nil {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}
