//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// exec runs a shell command in the task's guest through `nomad alloc exec`.
func (n *Nomad) exec(alloc *api.Allocation, script string) (string, error) {
	return n.nomadCLI("alloc", "exec", "-task", "vm", "-i=false", "-t=false", alloc.ID, "/bin/sh", "-c", script)
}

// TestConcurrentTasksAreIsolated: two VMs from one base each write a file;
// neither sees the other's, and neither the cached image nor the boot
// copy they run on changed.
func TestConcurrentTasksAreIsolated(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("twin-a", ""))
	n.RunJob(vmJob("twin-b", ""))
	a, b := n.waitRunning("twin-a"), n.waitRunning("twin-b")
	base := cachedBase(t)
	before := sha256File(t, base)
	image := strings.TrimSuffix(base, ".boot.qcow2") + ".qcow2"
	for _, x := range []struct {
		alloc *api.Allocation
		name  string
	}{{a, "a"}, {b, "b"}} {
		if out, err := n.exec(x.alloc, "echo "+x.name+" > /home/solstice/mine-"+x.name+" && sync"); err != nil {
			t.Fatalf("write in %s: %v\n%s", x.name, err, out)
		}
	}
	for _, x := range []struct {
		alloc       *api.Allocation
		own, others string
	}{{a, "a", "b"}, {b, "b", "a"}} {
		out, err := n.exec(x.alloc, "ls /home/solstice")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "mine-"+x.own) || strings.Contains(out, "mine-"+x.others) {
			t.Fatalf("guest %s sees %q", x.own, out)
		}
	}
	if after := sha256File(t, base); after != before {
		t.Fatalf("the boot copy changed: %s -> %s", before, after)
	}
	_, want := testImage(t)
	if got := sha256File(t, image); got != want {
		t.Fatalf("the cached image's sha256 is %s, the image's is %s", got, want)
	}
}

// cachedBase is what the test image's VMs boot from in the shared cache
// (which also holds other tests' images, the cloud-init flavour): the
// boot copy, since the test image is a compressed qcow2.
func cachedBase(t *testing.T) string {
	_, sum := testImage(t)
	base := filepath.Join(imageCacheDir(t), "bases", sum+".boot.qcow2")
	if _, err := os.Stat(base); err != nil {
		all, _ := filepath.Glob(filepath.Join(imageCacheDir(t), "bases", "*.qcow2"))
		t.Fatalf("the test image's base is not cached (%v); the cache holds %v", err, all)
	}
	return base
}

// pluginPIDs lists running solstice-vm plugin processes.
func pluginPIDs(t *testing.T) []int {
	bin := filepath.Join(env(t, "SOLSTICE_BIN"), "solstice-vm")
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if target, err := os.Readlink(p); err == nil && target == bin {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertStillServing checks the VM survived: same QEMU, guest answers,
// and a stop still powers it off cleanly.
func assertStillServing(t *testing.T, n *Nomad, job string, alloc *api.Allocation, pid int) {
	t.Helper()
	if !alive(pid) {
		t.Fatal("the VM died")
	}
	var out string
	var err error
	waitFor(t, 2*time.Minute, "exec to work again", func() bool {
		out, err = n.exec(alloc, "echo still-here")
		return err == nil && strings.Contains(out, "still-here")
	})
	cur, _, err := n.API.Allocations().Info(alloc.ID, nil)
	if err != nil || cur.TaskStates["vm"].State != "running" {
		t.Fatalf("task is not running after recovery: %s", describe(cur))
	}
	if qemuPID(t, n.vmDir(alloc)) != pid {
		t.Fatal("a new QEMU was started instead of adopting the old one")
	}
	if _, _, err := n.API.Jobs().Deregister(job, false, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "qemu to exit after stop", func() bool { return !alive(pid) })
	waitFor(t, time.Minute, "the task to be dead", func() bool {
		cur, _, _ = n.API.Allocations().Info(alloc.ID, nil)
		return cur.TaskStates["vm"].State == "dead"
	})
	if console := n.Logs(cur, "vm", "stdout"); !strings.Contains(console, "reboot: Power down") {
		t.Fatalf("stop after recovery did not power the guest off cleanly:\n%s", tail(console, 20))
	}
}

func TestRecoverAfterPluginKill(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("survivor", ""))
	alloc := n.waitRunning("survivor")
	pid := qemuPID(t, n.vmDir(alloc))
	killPluginAndWait(t, pid)
	assertStillServing(t, n, "survivor", alloc, pid)
}

// killPluginAndWait SIGKILLs the solstice-vm plugin (QEMU pid qemuPID
// lives on in its own session) and waits for Nomad to start a new one.
func killPluginAndWait(t *testing.T, qemuPID int) {
	t.Helper()
	plugins := pluginPIDs(t)
	if len(plugins) == 0 {
		t.Fatal("no solstice-vm plugin process found")
	}
	for _, p := range plugins {
		syscall.Kill(p, syscall.SIGKILL)
	}
	t.Logf("killed plugin pids %v; qemu pid %d", plugins, qemuPID)
	waitFor(t, 2*time.Minute, "a new plugin process", func() bool {
		now := pluginPIDs(t)
		return len(now) > 0 && now[0] != plugins[0]
	})
}

func TestRecoverAfterAgentRestart(t *testing.T) {
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("steadfast", ""))
	alloc := n.waitRunning("steadfast")
	pid := qemuPID(t, n.vmDir(alloc))
	ctx := testContext(t, 3*time.Minute)
	if err := n.Restart(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatal("restarting the Nomad agent killed the VM")
	}
	if _, err := n.WaitNode(ctx, "solstice-vm"); err != nil {
		t.Fatal(err)
	}
	assertStillServing(t, n, "steadfast", alloc, pid)
}

// TestBadInputs: each mistake fails the task with a message that names the
// problem and leaves no QEMU and no files behind.
func TestBadInputs(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "corrupt.qcow2")
	os.WriteFile(garbage, []byte("QFI\xfb but not really a qcow2 image at all"), 0o644)
	extra := fmt.Sprintf(`
    image "no-sha" {
      source = "https://images.example.invalid/x.qcow2"
      user   = "solstice"
    }
    image "wrong-sum" {
      source = "file://%s"
      sha256 = "%s"
      user   = "solstice"
    }
    image "corrupt" {
      source = "file://%s"
      sha256 = "%s"
      user   = "solstice"
    }`, garbage, strings.Repeat("0", 64), garbage, sha256File(t, garbage))
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{extra: extra})))
	tests := []struct {
		name, config, want string
	}{
		{"unknown-image", `image = "openindiana-hipster"`, `unknown image "openindiana-hipster"`},
		{"http-without-sha256", `image = "no-sha"`, "sha256 is required for an https source"},
		{"checksum-mismatch", `image = "wrong-sum"`, "checksum mismatch"},
		{"corrupt-image", `image = "corrupt"`, "corrupt image"},
		{"boot-timeout", `boot_timeout = "2s"`, "boot timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hcl := vmJob(tt.name, tt.config)
			if strings.HasPrefix(tt.config, "image") {
				hcl = strings.Replace(hcl, `image = "solstice-test"`, "", 1)
			}
			n.RunJob(hcl)
			alloc := n.WaitComplete(tt.name, 3*time.Minute)
			msg := taskMessages(alloc)
			if alloc.ClientStatus != api.AllocClientStatusFailed || !strings.Contains(msg, tt.want) {
				t.Fatalf("alloc %s, events %q; want failed with %q", alloc.ClientStatus, msg, tt.want)
			}
			assertNothingLeft(t, n, alloc)
		})
	}
}

func taskMessages(a *api.Allocation) string {
	var msgs []string
	for _, st := range a.TaskStates {
		for _, e := range st.Events {
			msgs = append(msgs, e.DisplayMessage)
		}
	}
	return strings.Join(msgs, " | ")
}

// qemuHolding lists the QEMU processes that hold a file whose path
// contains substr. QEMU's command line names no path (the driver hands it
// descriptors), so its open files are what tie it to an allocation.
func qemuHolding(substr string) []int {
	var pids []int
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		data, _ := os.ReadFile(c)
		if !strings.HasPrefix(string(data), "qemu-system") {
			continue
		}
		dir := filepath.Dir(c)
		fds, _ := filepath.Glob(filepath.Join(dir, "fd", "*"))
		for _, fd := range fds {
			if target, err := os.Readlink(fd); err == nil && strings.Contains(target, substr) {
				var pid int
				fmt.Sscan(filepath.Base(dir), &pid)
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// assertNothingLeft checks no QEMU holds a file of the alloc and its vm
// dir is gone.
func assertNothingLeft(t *testing.T, n *Nomad, alloc *api.Allocation) {
	t.Helper()
	waitFor(t, 30*time.Second, "no qemu for the alloc", func() bool { return len(qemuHolding(alloc.ID)) == 0 })
	if _, err := os.Stat(n.vmDir(alloc)); !os.IsNotExist(err) {
		t.Fatalf("the failed task left %s behind", n.vmDir(alloc))
	}
}

// TestQemuMissing: a client without QEMU reports the driver unhealthy with
// the reason, and the plugin keeps running.
func TestQemuMissing(t *testing.T) {
	n := StartNomad(t, WithRawExec(), WithPlugin(pluginConfig(t, pluginOpts{qemu: "/nonexistent/qemu-system-x86_64"})))
	var info *api.DriverInfo
	waitFor(t, time.Minute, "the driver to be fingerprinted", func() bool {
		nodes, _, _ := n.API.Nodes().List(nil)
		if len(nodes) == 0 {
			return false
		}
		node, _, _ := n.API.Nodes().Info(nodes[0].ID, nil)
		info = node.Drivers["solstice-vm"]
		return info != nil && info.HealthDescription != ""
	})
	if info.Healthy || !strings.Contains(info.HealthDescription, "/nonexistent/qemu-system-x86_64") {
		t.Fatalf("driver healthy=%v: %q", info.Healthy, info.HealthDescription)
	}
	if len(pluginPIDs(t)) == 0 {
		t.Fatal("the plugin process is gone")
	}
}

// TestAcceleratorFallsBackToTCG: with accelerator = "auto" on this host,
// where /dev/kvm exists but KVM guests hang, the node says tcg and why. The
// decisive test boot needs a cached image, so a VM runs first (under TCG,
// as the unverified verdict says).
func TestAcceleratorFallsBackToTCG(t *testing.T) {
	cache := t.TempDir() // a verdict from an earlier run must not answer for this one
	conf := strings.Replace(pluginConfig(t, pluginOpts{accelerator: "auto"}), imageCacheDir(t), cache, 1)
	n := StartNomad(t, WithPlugin(conf))
	n.RunJob(vmJob("warm-cache", ""))
	n.waitRunning("warm-cache")
	var attrs map[string]string
	waitFor(t, 4*time.Minute, "a final accelerator verdict", func() bool {
		nodes, _, _ := n.API.Nodes().List(nil)
		node, _, _ := n.API.Nodes().Info(nodes[0].ID, nil)
		attrs = node.Attributes
		reason := attrs["driver.solstice-vm.accelerator_reason"]
		return reason != "" && !strings.Contains(reason, "not run yet") && !strings.Contains(reason, "unverified")
	})
	if got := attrs["driver.solstice-vm.accelerator"]; got != "tcg" {
		t.Fatalf("accelerator = %q (%s), want tcg on this host", got, attrs["driver.solstice-vm.accelerator_reason"])
	}
	t.Logf("accelerator = tcg: %s", attrs["driver.solstice-vm.accelerator_reason"])
	log, _ := os.ReadFile(n.LogPath)
	if !strings.Contains(string(log), "accelerator chosen") || !strings.Contains(string(log), "accelerator=tcg") {
		t.Fatal("the client log does not say which accelerator was chosen and why")
	}
	for _, k := range []string{"driver.solstice-vm.version", "driver.solstice-vm.qemu_version", "driver.solstice-vm.image.solstice-test", "driver.solstice-vm.image.debian-test"} {
		if attrs[k] == "" {
			t.Errorf("node attribute %s is missing", k)
		}
	}
}

// TestGuestCannotReachHostLoopback: a listener on the host's 127.0.0.1 is
// out of the guest's reach through QEMU's gateway address.
func TestGuestCannotReachHostLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	n := StartNomad(t, WithPlugin(pluginConfig(t, pluginOpts{})))
	n.RunJob(vmJob("fenced", ""))
	alloc := n.waitRunning("fenced")
	probe := fmt.Sprintf("if timeout 10 bash -c 'exec 3<>/dev/tcp/10.0.2.2/%d'; then echo CONNECTED; else echo REFUSED; fi", port)
	out, err := n.exec(alloc, probe)
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	if !strings.Contains(out, "REFUSED") {
		t.Fatalf("the guest reached the host's loopback: %s", out)
	}
	select {
	case <-accepted:
		t.Fatal("the host listener accepted a connection from the guest")
	default:
	}
	// The guest still has a network: the gateway answers DNS.
	if out, err := n.exec(alloc, "ip -4 addr show; cat /etc/resolv.conf"); err != nil || !strings.Contains(out, "10.0.2.") {
		t.Fatalf("the guest has no network at all: %v\n%s", err, out)
	}
}

// TestBridgeModeGuestCannotReachHostLoopback: under bridge networking QEMU
// runs in the allocation's namespace, whose loopback holds none of the
// host's listeners, and the driver still reaches the guest from there.
func TestBridgeModeGuestCannotReachHostLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n := StartNomad(t, WithBridge(), WithPlugin(pluginConfig(t, pluginOpts{extra: "host_isolation = false"})))
	job := strings.Replace(vmJob("bridged", ""), `  group "g" {`, `  group "g" {
    network {
      mode = "bridge"
    }`, 1)
	n.RunJob(job)
	alloc := n.waitRunning("bridged")
	probe := fmt.Sprintf("if timeout 10 bash -c 'exec 3<>/dev/tcp/10.0.2.2/%d'; then echo CONNECTED; else echo REFUSED; fi", port)
	out, err := n.exec(alloc, probe)
	if err != nil || !strings.Contains(out, "REFUSED") {
		t.Fatalf("probe from a bridged guest: %v\n%s", err, out)
	}
	pid := qemuPID(t, n.vmDir(alloc))
	self, _ := os.Readlink("/proc/self/ns/net")
	theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if theirs == "" || theirs == self {
		t.Fatalf("qemu runs in network namespace %q, the host's is %q", theirs, self)
	}
}
