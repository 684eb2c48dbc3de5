// Package isolation keeps guests away from services on their host. QEMU's
// user-mode network maps the guest's gateway (10.0.2.2) to the host's
// loopback, so without care a CI job could talk to the Nomad API, Consul or
// the runner shims. Two ways out:
//
//   - bridge networking: QEMU runs inside the allocation's network
//     namespace, whose loopback holds nothing of the host's;
//   - host networking: QEMU runs with a dedicated group id, and a firewall
//     rule refuses new connections from that group to any local address
//     (local traffic, whatever its address, leaves through "lo").
package isolation

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Rules returns the iptables rule specs (for the OUTPUT chain) that block
// processes of gid from opening connections to this host. DNS stays open:
// QEMU forwards the guest's lookups to the host's resolver, which is often a
// local one (127.0.0.53).
func Rules(gid int) [][]string {
	owner := []string{"-o", "lo", "-m", "owner", "--gid-owner", strconv.Itoa(gid), "-m", "conntrack", "--ctstate", "NEW"}
	return [][]string{
		append(append([]string{}, owner...), "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset",
			"-m", "comment", "--comment", "solstice-vm: guests may not reach the host"),
		append(append([]string{}, owner...), "-p", "udp", "!", "--dport", "53", "-j", "REJECT",
			"-m", "comment", "--comment", "solstice-vm: guests may not reach the host"),
	}
}

// Firewall installs the rules with an iptables binary.
type Firewall struct {
	IPTables string // "iptables"
}

// Ensure installs the rules for gid unless they are already there, so a
// plugin restart does not stack duplicates.
func (f Firewall) Ensure(ctx context.Context, gid int) error {
	for _, rule := range Rules(gid) {
		if f.run(ctx, append([]string{"-C", "OUTPUT"}, rule...)...) == nil {
			continue
		}
		if err := f.run(ctx, append([]string{"-I", "OUTPUT"}, rule...)...); err != nil {
			return fmt.Errorf("install rule that keeps guests off the host: %w", err)
		}
	}
	return nil
}

// Remove deletes the rules (tests and uninstalls use it).
func (f Firewall) Remove(ctx context.Context, gid int) {
	for _, rule := range Rules(gid) {
		for f.run(ctx, append([]string{"-D", "OUTPUT"}, rule...)...) == nil {
		}
	}
}

func (f Firewall) run(ctx context.Context, args ...string) error {
	bin := f.IPTables
	if bin == "" {
		bin = "iptables"
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-w", "5"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
