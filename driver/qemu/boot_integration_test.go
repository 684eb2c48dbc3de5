//go:build integration

package qemu_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
)

// testImage is the Debian-built stand-in for an illumos cloud image; the
// Makefile builds it and passes its path.
func testImage(t *testing.T) string {
	t.Helper()
	img := os.Getenv("SOLSTICE_TEST_IMAGE")
	if img == "" {
		t.Fatal("SOLSTICE_TEST_IMAGE is not set: run the integration tests through `make test`, which builds the image")
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("test image: %v", err)
	}
	return img
}

// TestBootLoginPowerdown is the whole guest contract in one pass: boot from
// the image's own disk under TCG with a fresh NoCloud seed, log in with the
// seed's key, run commands, press the ACPI power button and see QEMU exit by
// itself.
func TestBootLoginPowerdown(t *testing.T) {
	base := testImage(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	overlay := filepath.Join(dir, "disk.qcow2")
	if err := (disk.Tool{}).CreateOverlay(ctx, base, "qcow2", overlay, 2<<30); err != nil {
		t.Fatal(err)
	}
	key, err := guestssh.NewKey("integration-test")
	if err != nil {
		t.Fatal(err)
	}
	// The guest gets its host key from the seed, as cloud-init's ssh_keys
	// does; the very first login insists on it.
	hostKey, err := guestssh.NewKey("root@solstice-it")
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.iso")
	err = cloudinit.WriteISO(seed, cloudinit.Seed{
		InstanceID: "integration-1",
		Hostname:   "solstice-it",
		Users: []cloudinit.User{{
			Name: "solstice", Sudo: cloudinit.PasswordlessSudo, Shell: "/bin/bash",
			SSHAuthorizedKeys: []string{key.AuthorizedKey},
		}},
		HostKey: &cloudinit.HostKey{PrivatePEM: string(hostKey.PrivatePEM), Public: hostKey.AuthorizedKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := qemu.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	// QEMU runs as an unprivileged uid that owns nothing: every file it
	// needs stays root's, mode 0600, in this 0700 dir, and comes to it as
	// an inherited descriptor.
	spec := qemu.Spec{
		Binary: "qemu-system-x86_64", Name: "integration", Accel: qemu.AccelTCG,
		MemoryMB: 512, CPUs: 2, Disk: overlay, Base: base, BaseFormat: "qcow2", Seed: seed,
		SSHHost: "127.0.0.1", SSHPort: port,
		QMP: filepath.Join(dir, "qmp.sock"), PIDFile: filepath.Join(dir, "qemu.pid"),
		User: &qemu.User{UID: testUID, GID: testGID},
	}

	start := time.Now()
	inst, q, err := qemu.Start(ctx, spec, qemu.Output{Console: console, Log: filepath.Join(dir, "qemu.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Kill()
	defer q.Close()
	defer dumpConsole(t, console.Name())

	target := guestssh.Target{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "solstice", PrivatePEM: key.PrivatePEM, HostKey: hostKey.Public,
	}
	c, err := guestssh.WaitReady(ctx, target, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	bootToSSH := time.Since(start)
	t.Logf("boot-to-SSH: %.1f s (TCG)", bootToSSH.Seconds())
	checkConfined(t, inst.Process.PID)
	checkPIDFile(t, spec.PIDFile, inst.Process.PID)

	out, err := c.Output(ctx, "uname -a; bash --version; git --version; hostname; cat /etc/ssh/ssh_host_ed25519_key.pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	wantPub := strings.Join(strings.Fields(hostKey.AuthorizedKey)[:2], " ")
	for _, want := range []string{"Linux", "GNU bash", "git version", "solstice-it", wantPub} {
		if !strings.Contains(string(out), want) {
			t.Errorf("guest output lacks %q:\n%s", want, out)
		}
	}
	// Another host key for the same guest is refused.
	impostor, err := guestssh.NewKey("impostor")
	if err != nil {
		t.Fatal(err)
	}
	wrong := target
	wrong.HostKey = impostor.Public
	if _, err := guestssh.Dial(ctx, wrong); !errors.Is(err, guestssh.ErrHostKeyMismatch) {
		t.Errorf("a login pinning another host key: %v, want %v", err, guestssh.ErrHostKeyMismatch)
	}

	if err := q.Powerdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Exited():
	case <-time.After(60 * time.Second):
		t.Fatal("the guest did not power off by itself after the ACPI power button")
	}
	if code := inst.ExitCode(); code != 0 {
		t.Fatalf("qemu exited with %d after the guest powered off", code)
	}
}

// The account QEMU runs as in this test: numbers only, no passwd entry
// needed.
const (
	testUID = 64998
	testGID = 64999
)

// checkConfined reads QEMU's /proc status: its uid and gid, no
// supplementary groups, no capabilities, no new privileges, and a seccomp
// filter (mode 2) installed by -sandbox.
func checkConfined(t *testing.T, pid int) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Uid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", testUID), "Gid": fmt.Sprintf("%d\t%[1]d\t%[1]d\t%[1]d", testGID),
		"Groups": "", "CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, val, _ := strings.Cut(line, ":")
		if w, ok := want[name]; ok {
			val = strings.TrimSpace(val)
			t.Logf("qemu pid %d %s:\t%s", pid, name, val)
			if val != w {
				t.Errorf("qemu's %s is %q, want %q", name, val, w)
			}
			delete(want, name)
		}
	}
	if len(want) > 0 {
		t.Errorf("qemu's status lacks %v", want)
	}
}

func checkPIDFile(t *testing.T, path string, pid int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(data)) != fmt.Sprint(pid) {
		t.Errorf("pidfile holds %q (%v), want %d", data, err, pid)
	}
}

func dumpConsole(t *testing.T, path string) {
	if !t.Failed() {
		return
	}
	data, _ := os.ReadFile(path)
	t.Logf("guest console:\n%s", data)
}
