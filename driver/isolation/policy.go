package isolation

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Family is an address family; each has its own iptables binary.
type Family int

// The families a policy covers.
const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Policy is what a guest may reach: the public internet, what the operator
// allow-lists and DNS through the host's resolvers; nothing on this host,
// in private, shared, link-local, multicast or reserved ranges.
type Policy struct {
	// GID is the group QEMU runs as; only its connections are filtered.
	GID int
	// Allow is the operator's allow-list (egress_allow). It opens denied
	// ranges, never this host.
	Allow []Allow
	// Resolvers are the host's DNS servers (resolv.conf): QEMU's user
	// network forwards the guest's lookups to them, so port 53 on exactly
	// these stays open even on a private address.
	Resolvers []netip.Addr
	// HostAddrs are this host's addresses, denied one by one where they
	// are not local: in an allocation's network namespace, traffic to the
	// host leaves through the bridge, not "lo". All are listed, those in
	// denied ranges too, as the allow-list may open those ranges. Unset on
	// the host itself.
	HostAddrs []netip.Addr
}

// Allow is one allow-list entry: a prefix and, optionally, a port range
// (then TCP and UDP to those ports only).
type Allow struct {
	Prefix netip.Prefix
	Ports  PortRange
}

// PortRange is an inclusive range of ports; the zero value means any port
// and any protocol.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range leaves ports unrestricted.
func (r PortRange) Any() bool { return r.Lo == 0 }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// iptables spells a range with a colon.
func (r PortRange) iptables() string { return strings.ReplaceAll(r.String(), "-", ":") }

func (a Allow) String() string {
	if a.Ports.Any() {
		return a.Prefix.String()
	}
	if a.Prefix.Addr().Is6() {
		return fmt.Sprintf("[%s]:%s", a.Prefix, a.Ports)
	}
	return fmt.Sprintf("%s:%s", a.Prefix, a.Ports)
}

// ParseAllow reads egress_allow entries: ADDR or CIDR, optionally followed
// by :PORT or :LO-HI (IPv6 in brackets when a port follows: "[fd00::/8]:443").
// Every bad entry is reported, by position and text.
func ParseAllow(entries []string) ([]Allow, error) {
	var out []Allow
	var errs []error
	for i, e := range entries {
		a, err := parseAllow(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d %q: %w", i+1, e, err))
			continue
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}

func parseAllow(s string) (Allow, error) {
	host, port, err := splitAllow(s)
	if err != nil {
		return Allow{}, err
	}
	var a Allow
	if a.Prefix, err = parsePrefix(host); err != nil {
		return Allow{}, err
	}
	if port != "" {
		if a.Ports, err = parsePorts(port); err != nil {
			return Allow{}, err
		}
	}
	return a, nil
}

// splitAllow separates the address part from the port part.
func splitAllow(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", errors.New("missing ] after an IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("unexpected %q after ]: want :PORT", rest)
		}
		return host, rest[1:], nil
	}
	// One colon separates an IPv4 address from its port; more mean an
	// IPv6 address, which needs brackets to carry a port.
	if strings.Count(s, ":") == 1 {
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return "", "", errors.New("empty port after ':'")
		}
		return host, port, nil
	}
	return s, "", nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("no address")
	}
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR: %w", err)
		}
		if addr.Zone() != "" {
			return netip.Prefix{}, errors.New("an address with a zone cannot be allow-listed")
		}
		addr = addr.Unmap()
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR: %w", err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, errors.New("write an IPv4-mapped CIDR in IPv4 form")
	}
	if p != p.Masked() {
		// 10.0.5.1/24 may be a typo for 10.0.5.1 as much as for
		// 10.0.5.0/24: refuse to guess which the operator meant.
		return netip.Prefix{}, fmt.Errorf("has bits set beyond /%d (did you mean %s?)", p.Bits(), p.Masked())
	}
	return p, nil
}

func parsePorts(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := parsePort(lo)
	h, err2 := parsePort(hi)
	if err := errors.Join(err1, err2); err != nil {
		return PortRange{}, err
	}
	if l > h {
		return PortRange{}, fmt.Errorf("port range %s is backwards", s)
	}
	return PortRange{Lo: l, Hi: h}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// denied is a range a guest may not reach unless the operator allows it.
type denied struct {
	prefix netip.Prefix
	why    string
}

func deny(cidr, why string) denied { return denied{netip.MustParsePrefix(cidr), why} }

// Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32) stay open: they are not routed on the internet, and tests
// use them to stand for public servers.
var deniedV4 = []denied{
	deny("0.0.0.0/8", "this network (RFC 791)"),
	deny("10.0.0.0/8", "private network (RFC 1918)"),
	deny("100.64.0.0/10", "shared address space, CGNAT (RFC 6598)"),
	deny("127.0.0.0/8", "loopback"),
	deny("169.254.0.0/16", "link-local, cloud metadata (RFC 3927)"),
	deny("172.16.0.0/12", "private network (RFC 1918)"),
	deny("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
	deny("192.168.0.0/16", "private network (RFC 1918)"),
	deny("198.18.0.0/15", "benchmarking, stands for private nets (RFC 2544)"),
	deny("224.0.0.0/4", "multicast"),
	deny("240.0.0.0/4", "reserved and broadcast"),
}

var deniedV6 = append([]denied{
	deny("::/128", "unspecified"),
	deny("::1/128", "loopback"),
	deny("::ffff:0:0/96", "IPv4-mapped"),
	deny("64:ff9b:1::/48", "local-use NAT64 (RFC 8215): reaches private IPv4"),
	deny("100::/64", "discard-only (RFC 6666)"),
	deny("2001::/32", "Teredo: tunnels to any IPv4 address"),
	deny("2001:2::/48", "benchmarking (RFC 5180)"),
	deny("2002::/16", "6to4, deprecated: embeds any IPv4 address"),
	deny("fc00::/7", "unique local addresses (RFC 4193)"),
	deny("fe80::/10", "link-local"),
	deny("fec0::/10", "site-local, deprecated"),
	deny("ff00::/8", "multicast"),
}, nat64Denied()...)

// nat64Denied maps each denied IPv4 range into the well-known NAT64 prefix
// 64:ff9b::/96, which a NAT64 gateway on the host's network would
// translate back into that IPv4 range.
func nat64Denied() []denied {
	var out []denied
	for _, d := range deniedV4 {
		v4 := d.prefix.Addr().As4()
		b := netip.MustParseAddr("64:ff9b::").As16()
		copy(b[12:], v4[:])
		p := netip.PrefixFrom(netip.AddrFrom16(b), 96+d.prefix.Bits())
		out = append(out, denied{p, "NAT64 of " + d.prefix.String() + ": " + d.why})
	}
	return out
}

// DeniedRanges lists the ranges a guest may not reach for a family, with
// the reason, for documentation and tests.
func DeniedRanges(f Family) []string {
	var out []string
	for _, d := range deniedRanges(f) {
		out = append(out, d.prefix.String()+" "+d.why)
	}
	return out
}

func deniedRanges(f Family) []denied {
	if f == IPv6 {
		return deniedV6
	}
	return deniedV4
}

func (f Family) has(a netip.Addr) bool { return a.Is6() == (f == IPv6) }

// ChainName is the iptables chain holding the policy for guests of gid.
// The gid is in the name so that drivers with different groups on one host
// (tests do that) never rewrite each other's chain.
func ChainName(gid int) string { return fmt.Sprintf("SOLSTICE-EGRESS-%d", gid) }

// Jump is the OUTPUT rule that sends new connections of the group's
// processes through the chain. Replies on connections others opened to
// QEMU (the driver's SSH to the guest) are not new, so they pass.
func (p Policy) Jump() []string {
	return []string{"-m", "owner", "--gid-owner", strconv.Itoa(p.GID), "-m", "conntrack", "--ctstate", "NEW",
		"-m", "comment", "--comment", "solstice-vm: new connections of guests go through their egress policy",
		"-j", ChainName(p.GID)}
}

// Rules returns the chain's rules for family f, in order, without the
// leading "-A CHAIN". The chain ends without a verdict: what it does not
// reject returns to OUTPUT, where the host's own rules still apply.
//
// The order is the policy: DNS to the host's resolvers first (they may
// sit on this host, 127.0.0.53); then this host, which no allow-list entry
// opens (an operator allowing the LAN the host sits on must not open the
// Nomad API on the host's LAN address); then the allow-list; then the
// denied ranges.
func (p Policy) Rules(f Family) [][]string {
	var rules [][]string
	for _, r := range p.Resolvers {
		if f.has(r) {
			dns := PortRange{53, 53}
			rules = append(rules, allowRules(netip.PrefixFrom(r, r.BitLen()), dns, "DNS to a resolver of the host (resolv.conf)")...)
		}
	}
	rules = append(rules, rejectRules(f, []string{"-o", "lo"}, "deny this host (the loopback path)")...)
	for _, h := range p.HostAddrs {
		if f.has(h) && !h.IsLoopback() {
			rules = append(rules, rejectRules(f, []string{"-d", netip.PrefixFrom(h, h.BitLen()).String()}, "deny an address of this host")...)
		}
	}
	for _, a := range p.Allow {
		if f.has(a.Prefix.Addr()) {
			rules = append(rules, allowRules(a.Prefix, a.Ports, "egress_allow "+a.String())...)
		}
	}
	for _, d := range deniedRanges(f) {
		rules = append(rules, rejectRules(f, []string{"-d", d.prefix.String()}, "deny "+d.why)...)
	}
	return rules
}

// allowRules let traffic to prefix (on ports, TCP and UDP) return to OUTPUT.
func allowRules(prefix netip.Prefix, ports PortRange, why string) [][]string {
	comment := []string{"-m", "comment", "--comment", "solstice-vm: allow " + why, "-j", "RETURN"}
	dst := []string{"-d", prefix.String()}
	if ports.Any() {
		return [][]string{concat(dst, comment)}
	}
	var out [][]string
	for _, proto := range []string{"tcp", "udp"} {
		out = append(out, concat(dst, []string{"-p", proto, "-m", proto, "--dport", ports.iptables()}, comment))
	}
	return out
}

// rejectRules refuse what match selects: TCP with a reset, so the guest's
// connect fails at once (a dropped SYN would hang it for minutes, and an
// ICMP error only surfaces at the first retransmission), the rest with
// "administratively prohibited".
func rejectRules(f Family, match []string, why string) [][]string {
	icmp := "icmp-admin-prohibited"
	if f == IPv6 {
		icmp = "icmp6-adm-prohibited"
	}
	comment := []string{"-m", "comment", "--comment", "solstice-vm: " + why}
	return [][]string{
		concat(match, []string{"-p", "tcp"}, comment, []string{"-j", "REJECT", "--reject-with", "tcp-reset"}),
		concat(match, comment, []string{"-j", "REJECT", "--reject-with", icmp}),
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
