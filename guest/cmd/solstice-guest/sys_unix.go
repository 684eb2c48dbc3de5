//go:build unix

package main

import (
	"errors"
	"os/exec"
	"syscall"
)

// newSession starts cmd in a session of its own: no controlling terminal,
// and no SIGHUP when the SSH session that started it ends.
func newSession(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// processAlive reports whether pid exists (EPERM: it does, as someone else).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// terminate asks the agent to cancel its job.
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
