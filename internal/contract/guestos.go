package contract

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// GuestOS is what differs between guest operating systems for running a
// job: each catalog image starts from its OS's row of GuestOSDefaults and
// may override any field (driver/plugin's image block).
type GuestOS struct {
	// PathPrepend goes in front of the guest's PATH for every step, so the
	// tools workflows expect (GNU tar, sed, make) are found first.
	PathPrepend []string
	// DefaultShell is the shell of a run step that names none (and of
	// defaults.run.shell unset): a name on PATH or an absolute path.
	// Empty keeps the runner's rule (bash if present, else sh).
	DefaultShell string
	// WorkRoot is the directory the agent puts workspaces under (the
	// runner's work directory); empty means under the agent's root.
	WorkRoot string
	// PowerOff is the command that powers the guest off, run over SSH when
	// the task stops, before ACPI (which some guests ignore).
	PowerOff string
}

// GuestOSDefaults is the one table of per-OS defaults, keyed by GOOS (the
// agent build the driver ships for the image).
var GuestOSDefaults = map[string]GuestOS{
	// illumos puts the GNU tools under /usr/gnu/bin; workflows written
	// for Linux expect GNU tar, sed and make behaviour.
	"illumos": {PathPrepend: []string{"/usr/gnu/bin"}, PowerOff: "/usr/sbin/poweroff"},
	"linux":   {PowerOff: "poweroff"},
	// The BSDs' base systems have no bash: sh is the shell workflows get.
	"freebsd": {DefaultShell: "sh", PowerOff: "shutdown -p now"},
	"openbsd": {DefaultShell: "sh", PowerOff: "shutdown -hp now"},
	"netbsd":  {DefaultShell: "sh", PowerOff: "shutdown -p now"},
}

// GuestOSNames lists the guest OSes the catalog accepts, sorted.
func GuestOSNames() []string {
	names := make([]string, 0, len(GuestOSDefaults))
	for n := range GuestOSDefaults {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultsFor returns os's row of GuestOSDefaults (a copy the caller may
// change), or an error naming the OSes there are.
func DefaultsFor(os string) (GuestOS, error) {
	d, ok := GuestOSDefaults[os]
	if !ok {
		return GuestOS{}, fmt.Errorf("unknown guest os %q (known: %v)", os, GuestOSNames())
	}
	d.PathPrepend = slices.Clone(d.PathPrepend)
	return d, nil
}

// GuestSettings is the part of a GuestOS the agent applies, carried in the
// plan (Plan.Guest): the driver knows the image, the agent does not.
type GuestSettings struct {
	PathPrepend []string `json:"path_prepend,omitempty"`
	Shell       string   `json:"shell,omitempty"`
	WorkRoot    string   `json:"work_root,omitempty"`
}

// Settings returns what the agent needs of g, or nil when that is nothing.
func (g GuestOS) Settings() *GuestSettings {
	if len(g.PathPrepend) == 0 && g.DefaultShell == "" && g.WorkRoot == "" {
		return nil
	}
	return &GuestSettings{PathPrepend: slices.Clone(g.PathPrepend), Shell: g.DefaultShell, WorkRoot: g.WorkRoot}
}

// CheckGuestSettings checks guest settings strictly: absolute paths only
// (a relative PATH entry would resolve against each step's directory),
// no list separators or NULs, and a shell CheckShell accepts. nil is fine.
func CheckGuestSettings(g *GuestSettings) error {
	if g == nil {
		return nil
	}
	var errs []error
	for _, p := range g.PathPrepend {
		if err := checkGuestPath(p); err != nil {
			errs = append(errs, fmt.Errorf("path_prepend: %w", err))
		}
	}
	if g.WorkRoot != "" {
		if err := checkGuestPath(g.WorkRoot); err != nil {
			errs = append(errs, fmt.Errorf("work_root: %w", err))
		}
	}
	if g.Shell != "" {
		if err := CheckShell(g.Shell); err != nil {
			errs = append(errs, fmt.Errorf("shell: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkGuestPath(p string) error {
	if !path.IsAbs(p) || strings.ContainsAny(p, ":\x00") {
		return fmt.Errorf("%q must be an absolute path without ':'", p)
	}
	return nil
}
