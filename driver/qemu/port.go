package qemu

import (
	"fmt"
	"net"
)

// FreePort asks the kernel for a TCP port that is free on host right now.
// Another process may take it before QEMU binds it; Start then fails with
// QEMU's "could not set up host forwarding rule" and the caller retries.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
