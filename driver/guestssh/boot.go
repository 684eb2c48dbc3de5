package guestssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// How WaitReady treats a booting guest's connections (see there).
const (
	// attemptLimit bounds one login once sshd has greeted it, and how
	// long a silent connection is kept.
	attemptLimit = 15 * time.Second
	// greetingWindow is how often a new connection is made while the
	// ones before it are silent: sshd greets at once.
	greetingWindow = time.Second
	// minKeep is how long a silent connection is kept at least: an sshd
	// that takes longer than greetingWindow to greet (one that
	// re-executes itself per connection, on a loaded host) still answers
	// one. It grows with the wait (a quarter of it).
	minKeep = 2 * time.Second
	// maxOpen bounds the connections open at once.
	maxOpen = 4
)

// WaitReady logs in to a booting guest as soon as it accepts a login, or
// fails when ctx ends. A booting guest refuses, resets or stalls
// connections in turn; all of those mean "not yet". So does a wrong host
// key, for an image whose sshd may answer briefly with a key of its own
// before it installs the seed's: the login is still refused every time,
// and the final error says so.
//
// A silent connection is the trap: QEMU's user network accepts a forwarded
// connection while the guest has no address (still booting, or renewing
// its lease in a warm clone) and passes it on only at its own TCP
// retransmission times, seconds apart, long after sshd is up. So while a
// connection is silent, a new one is made every greetingWindow beside it,
// each kept for minKeep or a quarter of the wait so far (an sshd slower
// than that to greet still answers one), at most maxOpen at once. The
// first one sshd greets carries on into the login and the others are
// closed. A refusal closes the silent ones too: the guest's network was
// up, so they went in before it was.
func WaitReady(ctx context.Context, t Target, every time.Duration) (*Client, error) {
	if _, err := t.config(); err != nil {
		return nil, err // no retry can mend the target itself
	}
	w := &bootWait{t: t, every: every, start: time.Now(), greeted: make(chan *probe), done: make(chan struct{})}
	defer close(w.done)
	defer w.closeAll()
	return w.run(ctx)
}

// bootWait is one WaitReady's connections.
type bootWait struct {
	t       Target
	every   time.Duration
	start   time.Time
	open    []*probe // oldest first
	greeted chan *probe
	done    chan struct{} // WaitReady returned: readers report to nobody
	next    time.Time     // when to make the next connection
	last    error
}

// probe is a connection waiting for sshd's greeting.
type probe struct {
	conn     net.Conn
	opened   time.Time
	greeting []byte
	err      error
}

func (w *bootWait) run(ctx context.Context) (*Client, error) {
	for {
		now := time.Now()
		w.dropStale(now)
		if !now.Before(w.next) && w.room() {
			w.dial(ctx, now)
		}
		wake := time.NewTimer(w.wake(time.Now()))
		select {
		case p := <-w.greeted:
			wake.Stop()
			if c := w.answered(ctx, p); c != nil {
				return c, nil
			}
		case <-wake.C:
		case <-ctx.Done():
			wake.Stop()
			return nil, fmt.Errorf("guest not reachable over ssh: %w (last attempt: %v)", ctx.Err(), w.last)
		}
	}
}

// room says whether another connection may be opened.
func (w *bootWait) room() bool { return len(w.open) < maxOpen }

// keep is how long a silent connection is kept.
func (w *bootWait) keep(now time.Time) time.Duration {
	return min(max(minKeep, now.Sub(w.start)/4), attemptLimit)
}

func (w *bootWait) dial(ctx context.Context, now time.Time) {
	w.next = now.Add(greetingWindow)
	attempt, cancel := context.WithTimeout(ctx, greetingWindow)
	conn, err := w.t.dial(attempt)
	cancel()
	if err != nil {
		w.fail(err)
		w.next = now.Add(w.every)
		return
	}
	p := &probe{conn: conn, opened: now}
	w.open = append(w.open, p)
	go func() {
		p.greeting, p.err = readGreeting(conn)
		select {
		case w.greeted <- p:
		case <-w.done:
		}
	}()
}

// answered handles a connection that said something or ended: a greeting
// goes on into the login (the other connections are closed first); a
// refusal means the guest's network is up.
func (w *bootWait) answered(ctx context.Context, p *probe) *Client {
	if !w.forget(p) {
		return nil // closed here for its silence
	}
	if p.err != nil {
		p.conn.Close()
		if errors.Is(p.err, io.EOF) || isReset(p.err) {
			// The guest refused: its network is up, and the silent
			// connections went in before it was, so none of them will
			// be answered in time.
			w.closeAll()
		}
		w.fail(fmt.Errorf("ssh to %s: %w", w.t.Addr, p.err))
		w.next = time.Now().Add(w.every)
		return nil
	}
	w.closeAll()
	login, cancel := context.WithTimeout(ctx, attemptLimit)
	defer cancel()
	c, err := w.t.login(login, &greetedConn{Conn: p.conn, r: io.MultiReader(bytes.NewReader(p.greeting), p.conn)})
	if err != nil {
		w.fail(err)
		w.next = time.Now().Add(w.every)
		return nil
	}
	return c
}

// fail keeps err as the last attempt's error, unless ctx's end caused it
// and an earlier error says more (a refused key, a closed port).
func (w *bootWait) fail(err error) {
	if w.last == nil || !errors.Is(err, context.DeadlineExceeded) {
		w.last = err
	}
}

// dropStale closes the silent connections kept long enough.
func (w *bootWait) dropStale(now time.Time) {
	keep := w.keep(now)
	for len(w.open) > 0 && now.Sub(w.open[0].opened) >= keep {
		w.fail(fmt.Errorf("ssh to %s: connected, but sshd said nothing within %s", w.t.Addr, keep))
		w.open[0].conn.Close()
		w.open = w.open[1:]
	}
}

// wake is how long to sleep before something is due.
func (w *bootWait) wake(now time.Time) time.Duration {
	d := attemptLimit
	if w.room() {
		d = w.next.Sub(now)
	}
	if len(w.open) > 0 {
		d = min(d, w.open[0].opened.Add(w.keep(now)).Sub(now))
	}
	return max(d, time.Millisecond)
}

// forget removes p from the open connections; false if it was not there.
func (w *bootWait) forget(p *probe) bool {
	for i, q := range w.open {
		if q == p {
			w.open = append(w.open[:i], w.open[i+1:]...)
			return true
		}
	}
	return false
}

func (w *bootWait) closeAll() {
	for _, p := range w.open {
		p.conn.Close()
	}
	w.open = nil
}

// readGreeting reads the first bytes sshd sends.
func readGreeting(conn net.Conn) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if n > 0 {
		return buf[:n], nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return nil, err
}

// greetedConn hands the greeting already read back to the SSH handshake.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (c *greetedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// isReset is a connection the far end reset: slirp passing on the guest's
// refusal.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}
