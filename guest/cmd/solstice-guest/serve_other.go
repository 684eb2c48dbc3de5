//go:build !linux

package main

import (
	"errors"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Warm clones are Linux guests for now: elsewhere serve answers an
// identity with an error, and the driver boots cold.
var errNotLinux = errors.New("serve: identity reset is implemented for Linux guests only")

func hostSystem() system {
	return system{spawn: func(login, string, string) (waitingJob, error) { return nil, errNotLinux }}
}

func (system) applyIdentity(contract.Identity) (string, error) { return "", errNotLinux }

func (system) settle() error { return errNotLinux }
