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
	// attemptLimit bounds one login once sshd has greeted it, and a silent
	// connection once the guest's network is known to be up.
	attemptLimit = 15 * time.Second
	// greetingWindow is how long a connection may stay silent while the
	// guest's network may still be down: sshd greets at once.
	greetingWindow = time.Second
	// patientAfter is how many silent connections in a row are dropped
	// after greetingWindow before the window starts to double, so that an
	// sshd slower than a second to greet (one that re-executes itself per
	// connection, on a loaded host) still gets a connection it can answer.
	patientAfter = 8
)

// errSilent is a connection that said nothing within its window.
var errSilent = errors.New("connected, but sshd said nothing")

// WaitReady logs in to a booting guest as soon as it accepts a login, or
// fails when ctx ends. A booting guest refuses, resets or stalls
// connections in turn; all of those mean "not yet". So does a wrong host
// key, for an image whose sshd may answer briefly with a key of its own
// before it installs the seed's: the login is still refused every time,
// and the final error says so.
//
// A silent connection is the trap: QEMU's user network accepts a forwarded
// connection before the guest has an address and passes it on only at its
// own TCP retransmission times, seconds apart, long after sshd is up. So
// until the guest has shown its network is up (by closing a connection:
// the port is not open yet), a connection sshd has not greeted within
// greetingWindow is dropped and a new one made. One connection is open at a
// time, and a greeted one carries on into the login: every connection
// costs an emulated guest an sshd process.
func WaitReady(ctx context.Context, t Target, every time.Duration) (*Client, error) {
	if _, err := t.config(); err != nil {
		return nil, err // no retry can mend the target itself
	}
	var (
		last       error
		networkUp  bool
		silentRuns int
	)
	for {
		window := greetingWindow << max(0, silentRuns-patientAfter+1)
		if networkUp || window > attemptLimit {
			window = attemptLimit
		}
		c, err := dialGreeted(ctx, t, window)
		if err == nil {
			return c, nil
		}
		pause := every
		switch {
		case errors.Is(err, errSilent):
			silentRuns++
			pause = 0 // it has waited its window already
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
			networkUp = true
			silentRuns = 0
		default:
			silentRuns = 0
		}
		// An attempt the overall deadline cut short says less than the
		// one before it (a refused key, a closed port): keep that one.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("guest not reachable over ssh: %w (last attempt: %v)", ctx.Err(), last)
		case <-time.After(pause):
		}
	}
}

// dialGreeted logs in once, on a connection dropped as errSilent when sshd
// does not greet it within window.
func dialGreeted(ctx context.Context, t Target, window time.Duration) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptLimit)
	defer cancel()
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	greeting, err := readGreeting(conn, window)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	return t.login(ctx, &greetedConn{Conn: conn, r: io.MultiReader(bytes.NewReader(greeting), conn)})
}

// readGreeting reads the first bytes sshd sends, within window.
func readGreeting(conn net.Conn, window time.Duration) ([]byte, error) {
	conn.SetReadDeadline(time.Now().Add(window))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	conn.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0:
		return buf[:n], nil
	case errors.As(err, &ne) && ne.Timeout():
		return nil, fmt.Errorf("%w within %s", errSilent, window)
	case err == nil:
		return nil, io.ErrNoProgress
	default:
		return nil, err
	}
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
