package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

// TestAgentBuildsForEveryGuestOS: every OS the catalog accepts gets a
// static amd64 agent from this package, and `make build` builds each of
// them (GUEST_OSES in the GNUmakefile lists the same OSes). make build
// warms the build cache, so under make test this costs little.
func TestAgentBuildsForEveryGuestOS(t *testing.T) {
	mk, err := os.ReadFile("../../../GNUmakefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GUEST_OSES\s*:=\s*(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("GNUmakefile has no GUEST_OSES")
	}
	listed := strings.Fields(string(m[1]))
	slices.Sort(listed)
	if want := contract.GuestOSNames(); !slices.Equal(listed, want) {
		t.Fatalf("GUEST_OSES = %v, want the catalog's OSes %v", listed, want)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go not on PATH")
	}
	dir := t.TempDir()
	for _, goos := range contract.GuestOSNames() {
		out := filepath.Join(dir, "solstice-guest-"+goos+"-amd64")
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the agent for %s: %v\n%s", goos, err, b)
		}
		if st, err := os.Stat(out); err != nil || st.Size() == 0 {
			t.Fatalf("no agent for %s: %v", goos, err)
		}
	}
}
