package runner

import (
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

// TestRunnerOSForEveryGuestOS: runner.os has GitHub's spelling for every
// OS the catalog accepts, so `if: runner.os == 'FreeBSD'` works.
func TestRunnerOSForEveryGuestOS(t *testing.T) {
	want := map[string]string{
		"linux": "Linux", "illumos": "illumos", "freebsd": "FreeBSD", "openbsd": "OpenBSD", "netbsd": "NetBSD",
	}
	for _, goos := range contract.GuestOSNames() {
		w, ok := want[goos]
		if !ok {
			t.Errorf("guest OS %q has no expected runner.os here", goos)
			continue
		}
		if got := runnerOS(goos); got != w {
			t.Errorf("runnerOS(%q) = %q, want %q", goos, got, w)
		}
	}
}
