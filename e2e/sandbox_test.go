//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestQEMUIsConfined: through Nomad, a task's QEMU runs as the plugin's
// qemu user (created by the plugin) in the isolation group, with no
// supplementary groups, no capabilities and a seccomp filter; it holds its
// disk, base and seed as descriptors the driver opened; and after the
// plugin is killed the new plugin adopts it, reaches it over QMP and
// powers it off cleanly.
func TestQEMUIsConfined(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("confined", ""))
	alloc := n.waitRunning("confined")
	vmDir := n.vmDir(alloc)
	pid := qemuPID(t, vmDir)

	qemuUser, err := user.Lookup("solstice-qemu")
	if err != nil {
		t.Fatalf("the plugin did not create the qemu user: %v", err)
	}
	want := map[string]string{
		"Uid":    strings.Repeat(qemuUser.Uid+"\t", 3) + qemuUser.Uid,
		"Gid":    "64999\t64999\t64999\t64999", // isolation_gid's default
		"Groups": "", "CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	}
	checkProcStatus(t, pid, want)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.ReplaceAll(string(cmdline), "\x00", " ")
	if !strings.Contains(args, "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny") {
		t.Errorf("qemu runs without the sandbox:\n%s", args)
	}
	if strings.Contains(args, vmDir) {
		t.Errorf("qemu's command line names a path in the VM dir:\n%s", args)
	}
	checkHeldFiles(t, pid, filepath.Join(vmDir, "disk.qcow2"), filepath.Join(vmDir, "seed.iso"), cachedBase(t))

	killPluginAndWait(t, pid)
	checkProcStatus(t, pid, want)
	assertStillServing(t, n, "confined", alloc, pid)
}

// checkProcStatus compares fields of /proc/PID/status and logs them.
func checkProcStatus(t *testing.T, pid int, want map[string]string) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok {
			got[name] = strings.TrimSpace(val)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		t.Logf("qemu pid %d %s:\t%s", pid, name, got[name])
		if got[name] != w {
			t.Errorf("qemu's %s is %q, want %q", name, got[name], w)
		}
	}
}

// checkHeldFiles checks that QEMU holds each path open.
func checkHeldFiles(t *testing.T, pid int, paths ...string) {
	t.Helper()
	links, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	held := map[string]bool{}
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil {
			held[target] = true
		}
	}
	for _, p := range paths {
		if !held[p] {
			t.Errorf("qemu does not hold %s open; it holds %v", p, held)
		}
	}
}
