// Package debugssh keeps a failed job's VM for one debug SSH session: it
// lets the triggering user's public keys into the guest (forced through a
// wrapper shell that records logins and starts in the job's workspace),
// opens a host port to the guest's sshd, tells the job's log where to
// connect, and ends the session when the user logs out after having logged
// in, when it expires, or when its context ends. The VM itself is the
// caller's to power off afterwards.
package debugssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Guest runs commands in the guest as the driver's own login.
type Guest interface {
	// Run runs cmd with stdin and returns at most max bytes of its stdout;
	// more is an error (the guest is hostile).
	Run(ctx context.Context, cmd string, stdin io.Reader, max int) ([]byte, error)
}

// Forward is the host port that reaches the guest's sshd.
type Forward interface {
	Open(ctx context.Context) error
	Close(ctx context.Context) error
}

// Emit records a debug event in the job's stream (and its readable log).
type Emit func(ev contract.Event) error

// Session is one debug session into a failed job's VM.
type Session struct {
	Request *contract.DebugSSH
	// Host and Port are where users connect (Host as the operator
	// advertises it); User is the guest user they log in as.
	Host string
	Port int
	User string
	// WorkDir is the guest's runner.workspace: the wrapper shell starts in
	// the job's workspace under it.
	WorkDir string
	// TTL bounds the session; Poll is how often the guest is asked
	// whether someone is logged in (DefaultPoll when zero).
	TTL  time.Duration
	Poll time.Duration

	Guest   Guest
	Forward Forward
	Emit    Emit
	Log     hclog.Logger

	now func() time.Time
}

// DefaultPoll is how often a session asks the guest about logins.
const DefaultPoll = 2 * time.Second

// Why a session ended.
const (
	EndLoggedOut = "the user logged out"
	EndExpired   = "the session expired"
	EndStopped   = "the job was stopped"
	// EndInterrupted is recorded by a restarted driver, which no longer
	// watches the session.
	EndInterrupted = "the Solstice driver restarted during the session"
)

// Run opens the session and waits for its end. It returns why the session
// ended; an error means it could not open or lost the guest, and its
// debug_ended event says so.
func (s *Session) Run(ctx context.Context) (string, error) {
	if s.now == nil {
		s.now = time.Now
	}
	if s.Poll <= 0 {
		s.Poll = DefaultPoll
	}
	expires := s.now().Add(s.TTL)
	if err := s.open(ctx); err != nil {
		return "", s.fail(fmt.Errorf("open the debug session: %w", err))
	}
	defer s.closeForward()
	addr := &contract.DebugSession{Host: s.Host, Port: s.Port, User: s.User, Expires: expires.UTC()}
	if err := s.Emit(contract.Event{Type: contract.TypeDebugSession, Debug: addr, Message: Announce(s.Request.User, addr)}); err != nil {
		return "", fmt.Errorf("record the debug session: %w", err)
	}
	s.Log.Info("debug session open", "user", s.Request.User, "port", s.Port, "expires", addr.Expires)
	reason, err := s.wait(ctx, expires)
	if err != nil {
		return "", s.fail(err)
	}
	s.Log.Info("debug session ended", "reason", reason)
	return reason, s.Emit(contract.Event{Type: contract.TypeDebugEnded, Message: "Debug session ended: " + reason + "."})
}

// Refuse records that no session opens, and why.
func Refuse(emit Emit, reason string) error {
	return emit(contract.Event{Type: contract.TypeDebugEnded, Message: "No debug session: " + reason + "."})
}

// Announce is the log's connection text: the command, the expiry and how
// to end the session early.
func Announce(forgeUser string, d *contract.DebugSession) string {
	return fmt.Sprintf("Debug session for %s: %s (keys of the forge user %s; open until %s; log out to end it earlier, or cancel the run)",
		forgeUser, d.Command(), forgeUser, d.Expires.UTC().Format("2006-01-02 15:04:05 UTC"))
}

func (s *Session) fail(err error) error {
	s.Log.Warn("debug session failed", "error", err)
	if eerr := Refuse(s.Emit, err.Error()); eerr != nil {
		return errors.Join(err, eerr)
	}
	return err
}

// open installs the keys and the wrapper shell, then the port.
func (s *Session) open(ctx context.Context) error {
	if _, err := s.Guest.Run(ctx, installCommand, strings.NewReader(installInput(s.Request.Keys, s.WorkDir)), 4096); err != nil {
		return fmt.Errorf("install the user's keys in the guest: %w", err)
	}
	if err := s.Forward.Open(ctx); err != nil {
		return fmt.Errorf("forward port %d to the guest's sshd: %w", s.Port, err)
	}
	return nil
}

func (s *Session) closeForward() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Forward.Close(ctx); err != nil {
		s.Log.Warn("could not close the debug port", "port", s.Port, "error", err)
	}
}

// wait polls the guest until the user has logged in and out, the session
// expires or ctx ends.
func (s *Session) wait(ctx context.Context, expires time.Time) (string, error) {
	ticker := time.NewTicker(s.Poll)
	defer ticker.Stop()
	for {
		if !s.now().Before(expires) {
			return EndExpired, nil
		}
		select {
		case <-ctx.Done():
			return EndStopped, nil
		case <-ticker.C:
		}
		st, err := s.status(ctx)
		if ctx.Err() != nil {
			return EndStopped, nil
		}
		if err != nil {
			return "", fmt.Errorf("ask the guest about debug logins: %w", err)
		}
		if st.seen && st.live == 0 {
			return EndLoggedOut, nil
		}
	}
}

// statusTimeout bounds one status question.
const statusTimeout = 15 * time.Second

func (s *Session) status(ctx context.Context) (loginStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	out, err := s.Guest.Run(ctx, statusCommand, nil, 64)
	if err != nil {
		return loginStatus{}, err
	}
	return parseStatus(out)
}

// SSHGuest runs commands over the driver's own SSH login.
type SSHGuest func(ctx context.Context) (*guestssh.Client, error)

// Run implements Guest.
func (g SSHGuest) Run(ctx context.Context, cmd string, stdin io.Reader, max int) ([]byte, error) {
	c, err := g(ctx)
	if err != nil {
		return nil, err
	}
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open an ssh session: %w", err)
	}
	defer sess.Close()
	out := &limitBuffer{max: max}
	sess.Stdout, sess.Stdin = out, stdin
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("guest command: %w", ctx.Err())
	}
	if out.over {
		return nil, fmt.Errorf("the guest answered more than %d bytes", max)
	}
	if err != nil {
		return nil, fmt.Errorf("guest command: %w", err)
	}
	return out.b, nil
}

// limitBuffer keeps up to max bytes and notes that more came.
type limitBuffer struct {
	b    []byte
	max  int
	over bool
}

func (l *limitBuffer) Write(p []byte) (int, error) {
	if len(l.b)+len(p) > l.max {
		l.over = true
		return 0, errors.New("output over its bound")
	}
	l.b = append(l.b, p...)
	return len(p), nil
}
