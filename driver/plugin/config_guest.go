package plugin

import (
	"fmt"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Guest is the image's guest settings: its OS's defaults with the image
// block's overrides applied. An explicit path_prepend (even an empty one)
// replaces the default list, so an operator can drop /usr/gnu/bin.
func (img *ImageConfig) Guest() contract.GuestOS {
	g, _ := contract.DefaultsFor(img.OS) // validate rejected unknown OSes
	if img.PathPrepend != nil {
		g.PathPrepend = append([]string{}, img.PathPrepend...)
	}
	if img.DefaultShell != "" {
		g.DefaultShell = img.DefaultShell
	}
	if img.WorkRoot != "" {
		g.WorkRoot = img.WorkRoot
	}
	if img.PowerOff != "" {
		g.PowerOff = img.PowerOff
	}
	return g
}

// validateGuest checks the overrides with the rules the plan's guest
// settings must pass in the agent, so a bad entry is caught at SetConfig
// rather than by every job that lands on it.
func (img *ImageConfig) validateGuest(label string) []error {
	var errs []error
	if err := contract.CheckGuestSettings(img.Guest().Settings()); err != nil {
		errs = append(errs, fmt.Errorf("image %q: %w", label, err))
	}
	return errs
}
