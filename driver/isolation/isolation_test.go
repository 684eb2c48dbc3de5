package isolation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scratchNetns makes a network namespace with loopback up, so the real
// rules can be tried without touching the host's firewall.
func scratchNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	name := fmt.Sprintf("solstice-iso-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}
	return "/var/run/netns/" + name
}

// listenIn serves TCP on 127.0.0.1:port (0: any) inside the namespace,
// closing every connection it accepts.
func listenIn(t *testing.T, ns string, port int) int {
	t.Helper()
	ch := make(chan net.Listener, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime drops the thread
		f, err := os.Open(ns)
		if err == nil {
			defer f.Close()
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		}
		if err != nil {
			t.Error(err)
			ch <- nil
			return
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Error(err)
		}
		ch <- l
	}()
	l := <-ch
	if l == nil {
		t.FailNow()
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// connect tries a TCP connection from inside ns, as gid when it is not 0.
func connect(t *testing.T, ns string, gid, port int) error {
	t.Helper()
	argv := []string{"nsenter", "--net=" + ns, "--"}
	if gid != 0 {
		argv = append(argv, "setpriv", "--regid", fmt.Sprint(gid), "--clear-groups")
	}
	argv = append(argv, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if ctx.Err() != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("the connection took %s instead of failing fast", time.Since(start))
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// TestEnforcerInANamespace installs the real policy and checks that only
// the group is fenced, that DNS to a resolver on this host stays open and
// that an allow-list entry never opens this host; then it damages the
// rules the ways a firewall reload or an operator would and checks that
// Sync reports it and repairs it. It needs root and iptables, as the
// driver does.
func TestEnforcerInANamespace(t *testing.T) {
	ns := scratchNetns(t)
	const gid = 64998
	ctx := context.Background()
	fenced, dns := listenIn(t, ns, 0), listenIn(t, ns, 53)
	e := &Enforcer{Tables: Tables{Netns: ns, IPv6: IPv6Enabled()}}
	p := Policy{GID: gid, Allow: mustAllow(t, fmt.Sprintf("127.0.0.1:%d", fenced)), Resolvers: addrs("127.0.0.1")}
	if err := e.Install(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.Install(ctx, p); err != nil { // idempotent
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "exec", strings.TrimPrefix(ns, "/var/run/netns/"), "iptables", "-S", "OUTPUT").Output()
	if n := strings.Count(string(out), "-j "+ChainName(gid)); n != 1 {
		t.Fatalf("after two installs OUTPUT jumps to the chain %d times, want 1:\n%s", n, out)
	}
	if err := connect(t, ns, 0, fenced); err != nil {
		t.Fatalf("an ordinary process could not connect: %v", err)
	}
	if err := connect(t, ns, gid, fenced); err == nil {
		t.Fatal("a process of the fenced group connected to a loopback listener (allow-listed, but this host stays closed)")
	}
	if err := connect(t, ns, gid, dns); err != nil {
		t.Fatalf("the group could not reach the resolver: %v", err)
	}

	chain := ChainName(gid)
	damage := []struct {
		name    string
		cmds    [][]string
		missing bool
		want    string
	}{
		{"firewall reloaded", [][]string{{"-F", "OUTPUT"}, {"-F", chain}, {"-X", chain}}, true,
			"chain SOLSTICE-EGRESS-64998 not found in iptables (firewall reloaded?)"},
		{"jump deleted", [][]string{{"-D", "OUTPUT", "1"}}, true,
			"rule sending group 64998 to chain SOLSTICE-EGRESS-64998 is gone from OUTPUT"},
		{"rule deleted", [][]string{{"-D", chain, "3"}}, false, "chain SOLSTICE-EGRESS-64998 in iptables: rule 3 is"},
		{"rule added", [][]string{{"-I", chain, "1", "-j", "RETURN"}}, false, `rule 1 is "-A SOLSTICE-EGRESS-64998 -j RETURN"`},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			for _, args := range d.cmds {
				if _, err := e.Tables.run(ctx, IPv4, nil, args...); err != nil {
					t.Fatal(err)
				}
			}
			drift, err := e.Sync(ctx, p)
			var dr *Drift
			if err != nil || !errors.As(drift, &dr) || dr.Missing != d.missing || !strings.Contains(drift.Error(), d.want) {
				t.Fatalf("Sync = drift %v (missing %v), err %v; want %q", drift, dr != nil && dr.Missing, err, d.want)
			}
			if err := e.Verify(ctx); err != nil {
				t.Fatalf("after the repair: %v", err)
			}
			if err := connect(t, ns, gid, fenced); err == nil {
				t.Fatal("after the repair the group reaches the listener")
			}
		})
	}

	t.Run("policy change is no drift", func(t *testing.T) {
		p.Resolvers = addrs("127.0.0.1", "10.255.255.53")
		if drift, err := e.Sync(ctx, p); drift != nil || err != nil {
			t.Fatalf("Sync = %v, %v", drift, err)
		}
		out, _ := e.Tables.run(ctx, IPv4, nil, "-S", ChainName(gid))
		if !strings.Contains(out, "-d 10.255.255.53/32 -p udp") {
			t.Fatalf("the new resolver is not allowed:\n%s", out)
		}
	})
	e.Remove(ctx, gid)
	if out, _ := e.Tables.run(ctx, IPv4, nil, "-S"); strings.Contains(out, "SOLSTICE") {
		t.Fatalf("Remove left rules behind:\n%s", out)
	}
}
