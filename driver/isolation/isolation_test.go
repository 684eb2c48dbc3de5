package isolation

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRulesNameGroupAndKeepDNS(t *testing.T) {
	rules := Rules(64999)
	if len(rules) != 2 {
		t.Fatalf("want a tcp and a udp rule, got %d", len(rules))
	}
	for _, r := range rules {
		s := strings.Join(r, " ")
		for _, want := range []string{"-o lo", "--gid-owner 64999", "--ctstate NEW", "REJECT"} {
			if !strings.Contains(s, want) {
				t.Errorf("rule %q lacks %q", s, want)
			}
		}
	}
	if !strings.Contains(strings.Join(rules[1], " "), "! --dport 53") {
		t.Error("the udp rule does not leave DNS open")
	}
}

// TestFirewallBlocksOnlyTheGroup installs the real rules and checks that a
// process of the isolated group cannot connect to a loopback listener while
// others still can. It needs root and iptables, as the driver does.
func TestFirewallBlocksOnlyTheGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, like the driver (run it through make test)")
	}
	const gid = 64998
	fw := Firewall{}
	ctx := context.Background()
	if err := fw.Ensure(ctx, gid); err != nil {
		t.Fatal(err)
	}
	defer fw.Remove(ctx, gid)
	if err := fw.Ensure(ctx, gid); err != nil { // idempotent
		t.Fatal(err)
	}
	out, _ := exec.Command("iptables", "-S", "OUTPUT").Output()
	if n := strings.Count(string(out), "--gid-owner 64998"); n != 2 {
		t.Fatalf("after two Ensure calls there are %d rules, want 2:\n%s", n, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	probe := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", addr.Port)
	if err := exec.Command("bash", "-c", probe).Run(); err != nil {
		t.Fatalf("an ordinary process could not connect: %v", err)
	}
	cmd := exec.Command("setpriv", "--regid", fmt.Sprint(gid), "--clear-groups", "bash", "-c", probe)
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a process of the isolated group connected to a loopback listener")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked connection hung instead of being refused")
	}
}
