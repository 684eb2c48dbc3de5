package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestStartInNetnsAsUser starts a process the way QEMU is started under
// bridge networking: in a network namespace that only root may enter, as
// an unprivileged user. It needs root, as the driver does.
func TestStartInNetnsAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	name := fmt.Sprintf("solstice-qemu-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	nsPath := "/run/netns/" + name

	own := inode(t, "/proc/thread-self/ns/net")
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = (&User{UID: 64998, GID: 64999}).SysProcAttr()
	if err := startIn(cmd, nsPath); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)), inode(t, nsPath); got != want {
		t.Errorf("the child's network namespace is inode %d, want %d", got, want)
	}
	if got := inode(t, "/proc/thread-self/ns/net"); got != own {
		t.Errorf("the test's own namespace changed from %d to %d", own, got)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"Uid": "64998\t64998\t64998\t64998", "Gid": "64999\t64999\t64999\t64999",
		"Groups": "", "CapEff": "0000000000000000",
	} {
		if got := statusField(string(status), field); got != want {
			t.Errorf("child's %s: %q, want %q", field, got, want)
		}
	}
}

// statusField is a field of /proc/PID/status, trimmed.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(missing)"
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
