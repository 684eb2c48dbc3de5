//go:build !unix

package runner

import (
	"errors"
	"os"
	"os/exec"
)

// The agent runs on Unix guests only; these keep the package compiling
// elsewhere (for tools that load every package).

func setProcessGroup(*exec.Cmd) {}

func signalGroup(int, groupSignal) error { return errors.ErrUnsupported }

func exitCodeOf(state *os.ProcessState) int { return state.ExitCode() }
