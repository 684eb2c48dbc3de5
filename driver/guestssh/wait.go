package guestssh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// greetingWindow is how long a booting guest's connection may stay silent
// before WaitReady opens another beside it. sshd greets at once; a
// connection held in QEMU's user network waits seconds.
const greetingWindow = time.Second

// attemptTimeout bounds one login attempt, greeting included.
const attemptTimeout = 15 * time.Second

// ErrNoGreeting is a connection on which the server said nothing before
// the attempt's deadline.
var ErrNoGreeting = errors.New("the server sent no greeting")

// WaitReady retries a login until the guest accepts it or ctx ends. A
// booting guest refuses, resets or stalls connections in turn; all of those
// mean "not yet". So does a wrong host key, for an image whose sshd may
// answer briefly with a key of its own before it installs the seed's: the
// login is still refused every time, and the final error says so.
//
// An attempt that fails is followed by the next after every. An attempt
// whose server has not greeted within greetingWindow gets a fresh one
// beside it, and the first to log in wins: QEMU's user network accepts a
// forwarded connection before the guest has its address and passes it on
// only at its own TCP retransmission times, seconds apart, long after
// sshd is up; while a guest whose sshd is merely slow to greet still
// answers the connection it has.
func WaitReady(ctx context.Context, t Target, every time.Duration) (*Client, error) {
	if _, err := t.config(); err != nil {
		return nil, err // no retry can mend the target itself
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &waiter{ctx: ctx, t: t, events: make(chan attemptEvent)}
	var last error
	newest := w.start()
	var next <-chan time.Time
	for {
		select {
		case ev := <-w.events:
			switch {
			case ev.c != nil:
				return ev.c, nil
			case ev.silent && ev.id == newest:
				newest = w.start()
			case ev.err != nil:
				// An attempt the overall deadline cut short says less
				// than the one before it (a refused key, a closed port).
				if last == nil || ctx.Err() == nil {
					last = ev.err
				}
				if ev.id == newest {
					next = time.After(every)
				}
			}
		case <-next:
			next = nil
			newest = w.start()
		case <-ctx.Done():
			return nil, fmt.Errorf("guest not reachable over ssh: %w (last attempt: %v)", ctx.Err(), last)
		}
	}
}

// waiter runs WaitReady's attempts, each in its own goroutine.
type waiter struct {
	ctx    context.Context // ends when WaitReady returns
	t      Target
	events chan attemptEvent
	n      int
}

// attemptEvent is an attempt that logged in (c), failed (err) or has not
// been greeted within the window yet (silent).
type attemptEvent struct {
	id     int
	silent bool
	c      *Client
	err    error
}

func (w *waiter) start() int {
	w.n++
	id := w.n
	go w.attempt(id)
	return id
}

func (w *waiter) attempt(id int) {
	ctx, cancel := context.WithTimeout(w.ctx, attemptTimeout)
	defer cancel()
	c, err := dial(ctx, w.t, func() { w.send(attemptEvent{id: id, silent: true}) })
	if !w.send(attemptEvent{id: id, c: c, err: err}) && c != nil {
		c.Close() // another attempt won
	}
}

// send reports to WaitReady, unless it has returned.
func (w *waiter) send(ev attemptEvent) bool {
	select {
	case w.events <- ev:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// awaitGreeting waits for the server's first byte, which the SSH handshake
// then reads from the returned conn: onSilent is called if it has not come
// within greetingWindow, and the wait goes on until ctx's deadline.
func awaitGreeting(ctx context.Context, conn net.Conn, onSilent func()) (net.Conn, error) {
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(greetingWindow))
	_, err := br.Peek(1)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		onSilent()
		dl, _ := ctx.Deadline()
		conn.SetReadDeadline(dl)
		_, err = br.Peek(1)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoGreeting, ctx.Err())
		}
		return nil, fmt.Errorf("%w: %v", ErrNoGreeting, err)
	}
	conn.SetReadDeadline(time.Time{})
	return &greetedConn{Conn: conn, r: br}, nil
}

// greetedConn is a conn whose first bytes were read ahead into r.
type greetedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *greetedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
