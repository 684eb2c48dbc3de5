//go:build unix

package runner

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup makes the step's process the leader of a new process
// group, so that everything it starts can be signalled at once. Linux and
// illumos share this part of the syscall package.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to every process of the group led by pgid.
func signalGroup(pgid int, sig groupSignal) error {
	s := map[groupSignal]syscall.Signal{
		sigCheck: 0, sigInterrupt: syscall.SIGINT, sigTerminate: syscall.SIGTERM, sigKill: syscall.SIGKILL,
	}[sig]
	return syscall.Kill(-pgid, s)
}

// exitCodeOf reports a process's exit code; one killed by a signal N
// exits with 128+N, as .NET (and so GitHub's runner) reports it.
func exitCodeOf(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}
