//go:build !unix

package main

import (
	"errors"
	"os/exec"
)

// The agent runs on Unix guests only; these keep the command compiling
// elsewhere.

func newSession(*exec.Cmd) {}

func processAlive(int) bool { return false }

func terminate(int) error { return errors.ErrUnsupported }
