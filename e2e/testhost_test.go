//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHost is another machine on the network, as far as a guest can tell:
// a network namespace this test makes, joined to the host by a veth pair.
// Guests reach it through QEMU's user-mode NAT the way they reach a real
// forge, and never through the host's loopback.
type TestHost struct {
	Name   string // the namespace
	IP     string // the test host's address
	HostIP string // the host side of the veth pair
	t      *testing.T
}

var testHostSeq atomic.Int32

// NewTestHost makes a namespace with an address in 10.213.N.0/24 and
// removes it when the test ends.
func NewTestHost(t *testing.T) *TestHost {
	t.Helper()
	n := int(testHostSeq.Add(1)) + os.Getpid()%100*2
	h := &TestHost{
		Name:   fmt.Sprintf("solstice-th-%d-%d", os.Getpid(), n),
		IP:     fmt.Sprintf("10.213.%d.2", n%250),
		HostIP: fmt.Sprintf("10.213.%d.1", n%250),
		t:      t,
	}
	hostIf, peerIf := fmt.Sprintf("sth%d", n), fmt.Sprintf("stp%d", n)
	steps := [][]string{
		{"netns", "add", h.Name},
		{"link", "add", hostIf, "type", "veth", "peer", "name", peerIf},
		{"link", "set", peerIf, "netns", h.Name},
		{"addr", "add", h.HostIP + "/24", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", h.Name, "addr", "add", h.IP + "/24", "dev", peerIf},
		{"-n", h.Name, "link", "set", peerIf, "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
		{"-n", h.Name, "route", "add", "default", "via", h.HostIP},
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", h.Name).Run()
	})
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return h
}

// Listen opens a TCP listener inside the test host. The socket belongs to
// the namespace it was made in, so serving it from any goroutine works.
func (h *TestHost) Listen(port int) net.Listener {
	h.t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime drops the thread
		ns, err := os.Open("/var/run/netns/" + h.Name)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", h.IP, port))
		ch <- result{l, err}
	}()
	r := <-ch
	if r.err != nil {
		h.t.Fatalf("listen in test host %s: %v", h.Name, r.err)
	}
	h.t.Cleanup(func() { r.l.Close() })
	return r.l
}
