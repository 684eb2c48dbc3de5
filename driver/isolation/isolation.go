// Package isolation keeps guests to their egress policy: the public
// internet, what the operator allow-lists and DNS through the host's
// resolvers; never this host, private, shared (CGNAT), link-local
// (cloud metadata), multicast or reserved ranges.
//
// QEMU's user-mode network turns every connection a guest makes into a
// socket QEMU opens itself, and QEMU runs with a dedicated group id. So the
// policy is an iptables chain (SOLSTICE-EGRESS-<gid>, see Policy) that the
// OUTPUT chain sends the group's new connections through:
//
//   - host networking: in the host's OUTPUT. Traffic to any of the host's
//     own addresses leaves through "lo", which the chain rejects, so
//     addresses added later (a new bridge) are covered too;
//   - bridge networking: QEMU runs inside the allocation's network
//     namespace, and the same chain goes into that namespace's OUTPUT at
//     task start. There the host's addresses are remote (the bridge's
//     gateway, the LAN address), so the chain lists them.
//
// Installing into the allocation's namespace rather than on the host's
// FORWARD and INPUT paths is deliberate: it needs no knowledge of the
// allocation's address (which CNI hands out and reuses), filters exactly
// QEMU's sockets by group and not every workload on the bridge (a shim in
// bridge mode must still reach Nomad), and goes away with the namespace.
package isolation

import "strconv"

// legacyRules are the two OUTPUT rules earlier versions installed for
// host networking; Install removes them, as the chain supersedes them.
func legacyRules(gid int) [][]string {
	owner := []string{"-o", "lo", "-m", "owner", "--gid-owner", strconv.Itoa(gid), "-m", "conntrack", "--ctstate", "NEW"}
	comment := []string{"-m", "comment", "--comment", "solstice-vm: guests may not reach the host"}
	return [][]string{
		concat(owner, []string{"-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"}, comment),
		concat(owner, []string{"-p", "udp", "!", "--dport", "53", "-j", "REJECT"}, comment),
	}
}
