package guestssh

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// slirp stands in front of an sshd the way QEMU's user network does for a
// booting guest: it accepts every connection at once, and plan says what
// happens to the n-th one (from 0).
type slirp struct {
	addr     string
	accepted atomic.Int32
}

type fate int

const (
	hold    fate = iota // the guest has no address yet: silence, for good
	refuse              // the guest is up, sshd not yet: closed at once
	forward             // sshd is up
)

func newSlirp(t *testing.T, sshd string, greetAfter time.Duration, plan func(n int) fate) *slirp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	s := &slirp{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := int(s.accepted.Add(1)) - 1
			go s.serve(c, plan(n), sshd, greetAfter, done)
		}
	}()
	return s
}

func (s *slirp) serve(c net.Conn, f fate, sshd string, greetAfter time.Duration, done chan struct{}) {
	defer c.Close()
	switch f {
	case refuse:
		return
	case hold:
		closed := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(closed) }()
		select {
		case <-done:
		case <-closed:
		}
		return
	}
	time.Sleep(greetAfter) // a slow sshd: fork, exec, then the banner
	up, err := net.Dial("tcp", sshd)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(up, c)
	io.Copy(c, up)
}

// TestWaitReadyDropsConnectionsTheGuestCannotTakeYet: a connection made
// while the guest had no address stays silent for as long as QEMU's user
// network likes, at boot or when a warm clone renews its lease after its
// network was up; WaitReady logs in on a fresh one as soon as sshd is up.
func TestWaitReadyDropsConnectionsTheGuestCannotTakeYet(t *testing.T) {
	login, _ := newKey(t, "login")
	host, hostSigner := newKey(t, "host")
	srv := newSSHD(t, login, hostSigner)
	for _, tc := range []struct {
		name  string
		fates []fate
	}{
		{"booting", []fate{hold, hold, hold, refuse, refuse}},
		{"renewing its lease", []fate{refuse, hold, hold, hold}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSlirp(t, srv.addr, 0, func(n int) fate {
				if n < len(tc.fates) {
					return tc.fates[n]
				}
				return forward
			})
			start := time.Now()
			c, err := WaitReady(testCtx(t, 30*time.Second), Target{Addr: s.addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: host.Public}, 100*time.Millisecond)
			if err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			c.Close()
			// A second per silent connection: nowhere near the 15 s a
			// held connection could cost.
			if took := time.Since(start); took > 6*time.Second {
				t.Errorf("login after %s, want it soon after the third silent second", took)
			}
			// A new connection every second while they are silent, one
			// after each refusal, and the login on the first one sshd
			// greeted: no probe beside it.
			if n := s.accepted.Load(); n != int32(len(tc.fates)+1) {
				t.Errorf("%d connections made, want %d", n, len(tc.fates)+1)
			}
		})
	}
}

// TestWaitReadyWaitsForASlowSSHD: an sshd that takes longer than the
// greeting window to answer (a loaded host) still gets a login, on a
// connection kept beside the newer ones, and once the wait has grown long
// enough to keep connections as long as it needs.
func TestWaitReadyWaitsForASlowSSHD(t *testing.T) {
	login, _ := newKey(t, "login")
	host, hostSigner := newKey(t, "host")
	srv := newSSHD(t, login, hostSigner)
	target := func(addr string) Target {
		return Target{Addr: addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: host.Public}
	}
	for _, tc := range []struct {
		name  string
		greet time.Duration
		plan  func(n int) fate
		conns int32 // 0: any number
	}{
		{"after a refusal", 3 * greetingWindow / 2, func(n int) fate { return [...]fate{refuse, forward}[min(n, 1)] }, 3},
		{"never refused", 3 * greetingWindow / 2, func(int) fate { return forward }, 2},
		{"slower than minKeep", minKeep + greetingWindow/2, func(int) fate { return forward }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSlirp(t, srv.addr, tc.greet, tc.plan)
			c, err := WaitReady(testCtx(t, time.Minute), target(s.addr), 100*time.Millisecond)
			if err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			c.Close()
			if n := s.accepted.Load(); tc.conns != 0 && n != tc.conns {
				t.Errorf("%d connections made, want %d", n, tc.conns)
			}
		})
	}
}
