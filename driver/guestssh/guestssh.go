// Package guestssh is the driver's way into a guest: a per-task ed25519 key,
// waiting for sshd to come up, running commands and copying files.
package guestssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Key is an ephemeral ed25519 key pair: a task's login key (the private
// half written only to the task's secrets dir, the public half into the
// NoCloud seed) or a guest's host key (both halves into the seed, the
// public half also into the task's state, so logins can insist on it).
type Key struct {
	PrivatePEM    []byte // OpenSSH format, as cloud-init's ssh_keys takes it
	AuthorizedKey string // "ssh-ed25519 AAAA… comment"
	Public        []byte // wire format, as a host key is pinned
}

// NewKey generates a fresh ed25519 key.
func NewKey(comment string) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return Key{}, fmt.Errorf("encode private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return Key{}, fmt.Errorf("encode public key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	if comment != "" {
		line += " " + comment
	}
	return Key{PrivatePEM: pem.EncodeToMemory(block), AuthorizedKey: line, Public: sshPub.Marshal()}, nil
}

// Target says where and as whom to log in.
type Target struct {
	Addr       string // host:port of the forwarded sshd
	User       string
	PrivatePEM []byte
	// HostKey is the guest's host key (wire format), required: the driver
	// gives each guest its host key in the seed, so even the first login
	// knows whom it talks to. Whatever else answers on the forwarded port
	// (another process that won the port, a guest of another task) never
	// sees a login attempt.
	HostKey []byte
	// Dial opens the TCP connection; nil means the host's own network. A
	// guest behind an allocation's network namespace is dialled from there.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// ErrNoHostKey refuses a login that could not tell the guest from an
// impostor.
var ErrNoHostKey = errors.New("no pinned host key for the guest: refusing to log in without one")

// ErrHostKeyMismatch is a server whose host key is not the guest's.
var ErrHostKeyMismatch = errors.New("host key mismatch")

func (t Target) config() (*ssh.ClientConfig, error) {
	signer, err := ssh.ParsePrivateKey(t.PrivatePEM)
	if err != nil {
		return nil, fmt.Errorf("parse task ssh key: %w", err)
	}
	if len(t.HostKey) == 0 {
		return nil, ErrNoHostKey
	}
	want, err := ssh.ParsePublicKey(t.HostKey)
	if err != nil {
		return nil, fmt.Errorf("parse pinned host key: %w", err)
	}
	return &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: pinned(want),
		// Offer only the pinned key's algorithm: a guest that also has,
		// say, an ECDSA host key must not be asked for that one.
		HostKeyAlgorithms: []string{want.Type()},
		Timeout:           10 * time.Second,
	}, nil
}

// pinned accepts exactly the want key, and says which key came instead.
func pinned(want ssh.PublicKey) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, got ssh.PublicKey) error {
		if bytes.Equal(got.Marshal(), want.Marshal()) {
			return nil
		}
		return fmt.Errorf("%w: the server's key is %s, the guest's (given to it in the seed) is %s: refusing to log in",
			ErrHostKeyMismatch, ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(want))
	}
}

// Client is a logged-in SSH connection to a guest.
type Client struct {
	*ssh.Client
}

// Dial logs in once, to a server that shows the pinned host key.
func Dial(ctx context.Context, t Target) (*Client, error) {
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	return t.login(ctx, conn)
}

// dial opens the TCP connection a login goes over.
func (t Target) dial(ctx context.Context) (net.Conn, error) {
	if _, err := t.config(); err != nil {
		return nil, err
	}
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, t.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	return conn, nil
}

// login runs the SSH handshake on conn, within ctx's deadline; it closes
// conn when the login fails.
func (t Target) login(ctx context.Context, conn net.Conn) (*Client, error) {
	cfg, err := t.config()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh login as %s at %s: %w", t.User, t.Addr, err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{Client: ssh.NewClient(c, chans, reqs)}, nil
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Command string
	Code    int
	Stderr  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("guest command %q exited with %d: %s", e.Command, e.Code, strings.TrimSpace(e.Stderr))
}

// What Output keeps of a command's output. The guest is hostile: a job
// may have replaced the commands the driver runs there (its agent, a
// shell) with ones that print without end.
const (
	// MaxOutput is the most stdout Output returns; past it the command
	// fails.
	MaxOutput = 1 << 20
	// maxStderr is the most of stderr an ExitError says; the rest is cut.
	maxStderr = 4 << 10
)

// Output runs cmd in the guest's login shell and returns its stdout, which
// must be at most MaxOutput bytes. A non-zero exit is an *ExitError
// carrying (the start of) stderr.
func (c *Client) Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open ssh session: %w", err)
	}
	defer sess.Close()
	stdout, stderr := &capped{max: MaxOutput}, &capped{max: maxStderr}
	sess.Stdout, sess.Stderr, sess.Stdin = stdout, stderr, stdin
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		return nil, fmt.Errorf("guest command %q: %w", cmd, ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return stdout.b, &ExitError{Command: cmd, Code: ee.ExitStatus(), Stderr: stderr.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("guest command %q: %w", cmd, err)
	}
	if stdout.cut {
		return nil, fmt.Errorf("guest command %q: its output passed %d bytes", cmd, MaxOutput)
	}
	return stdout.b, nil
}

// capped keeps the first max bytes written to it and drops the rest, but
// takes them all: a writer that failed would stop the session reading,
// and the command would block, never to exit.
type capped struct {
	b   []byte
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	keep := min(len(p), c.max-len(c.b))
	c.b = append(c.b, p[:keep]...)
	c.cut = c.cut || keep < len(p)
	return len(p), nil
}

func (c *capped) String() string {
	if c.cut {
		return string(c.b) + "…"
	}
	return string(c.b)
}

// Upload writes data to path in the guest with the given mode, through the
// guest's own shell so that no SFTP subsystem is required (illumos images
// do not all enable it).
func (c *Client) Upload(ctx context.Context, path string, mode uint32, data io.Reader) error {
	q := ShellQuote(path)
	cmd := fmt.Sprintf("umask 077 && cat > %s.tmp && chmod %o %s.tmp && mv -f %s.tmp %s", q, mode, q, q, q)
	if _, err := c.Output(ctx, cmd, data); err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	return nil
}

// PrintfFormat is a printf(1) format that prints exactly b (a gzip plan,
// random bytes): a command line takes no NUL, so every byte but printable
// ASCII goes as a POSIX octal escape. Shell-quote it for a command line.
// A leading '-' is escaped too: dash's printf takes a format that starts
// with one for an option and fails ("Illegal option").
func PrintfFormat(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		switch {
		case c == '-' && i == 0:
			sb.WriteString(`\055`)
		case c == '%':
			sb.WriteString("%%")
		case c == '\\':
			sb.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, `\%03o`, c)
		}
	}
	return sb.String()
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
