//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHost is another machine on the network, as far as a guest can tell:
// a network namespace this test makes, joined to the host by a veth pair
// on a /30 of its own. Guests reach it through QEMU's user-mode NAT the
// way they reach a real server, and never through the host's loopback.
type TestHost struct {
	Name   string // the namespace
	IP     string // the test host's address
	HostIP string // the host side of the veth pair
	t      *testing.T
}

// publicHosts is where NewTestHost puts hosts: TEST-NET-2 stands for the
// public internet, which the guests' egress policy leaves open.
var publicHosts = netip.MustParsePrefix("198.51.100.0/24")

// NewTestHost makes a test host standing for a public server, at the
// first free 198.51.100.4k+2, and removes it when the test ends.
func NewTestHost(t *testing.T) *TestHost {
	t.Helper()
	base := publicHosts.Addr().As4()
	for k := range 64 {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(4*k + 2)})
		if h, ok := newTestHost(t, ip); ok {
			return h
		}
	}
	t.Fatalf("no free test host address left in %s", publicHosts)
	return nil
}

// NewTestHostAt makes a test host at addr (a private 10.x address, the
// cloud metadata 169.254.169.254, …), linked to this host over the /30
// that holds addr. The address must be free on this host.
func NewTestHostAt(t *testing.T, addr string) *TestHost {
	t.Helper()
	ip, err := netip.ParseAddr(addr)
	if err != nil || !ip.Is4() {
		t.Fatalf("test host address %q: want an IPv4 address", addr)
	}
	h, ok := newTestHost(t, ip)
	if !ok {
		t.Fatalf("test host address %s is taken (namespace %s exists)", addr, testHostName(ip))
	}
	return h
}

func testHostName(ip netip.Addr) string {
	return "solstice-th-" + strings.ReplaceAll(ip.String(), ".", "-")
}

// newTestHost makes the namespace for ip, or reports false when it exists
// already: the namespace's name reserves the address, atomically, among
// concurrent test processes.
func newTestHost(t *testing.T, ip netip.Addr) (*TestHost, bool) {
	t.Helper()
	subnet := netip.PrefixFrom(ip, 30).Masked()
	b := subnet.Addr().As4()
	first, second := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3] + 1}), netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3] + 2})
	hostIP := first
	switch ip {
	case first:
		hostIP = second
	case second:
	default:
		t.Fatalf("test host address %s is not a usable address of %s", ip, subnet)
	}
	h := &TestHost{Name: testHostName(ip), IP: ip.String(), HostIP: hostIP.String(), t: t}
	if out, err := exec.Command("ip", "netns", "add", h.Name).CombinedOutput(); err != nil {
		if _, statErr := os.Stat("/var/run/netns/" + h.Name); statErr == nil {
			return nil, false
		}
		t.Fatalf("ip netns add %s: %v\n%s", h.Name, err, out)
	}
	a := ip.As4()
	suffix := fmt.Sprintf("%02x%02x%02x%02x", a[0], a[1], a[2], a[3])
	hostIf, peerIf := "sth"+suffix, "stp"+suffix
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", h.Name).Run()
	})
	steps := [][]string{
		{"link", "add", hostIf, "type", "veth", "peer", "name", peerIf},
		{"link", "set", peerIf, "netns", h.Name},
		{"addr", "add", h.HostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", h.Name, "addr", "add", h.IP + "/30", "dev", peerIf},
		{"-n", h.Name, "link", "set", peerIf, "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
		{"-n", h.Name, "route", "add", "default", "via", h.HostIP},
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return h, true
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
