package isolation

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func mustAllow(t *testing.T, entries ...string) []Allow {
	t.Helper()
	a, err := ParseAllow(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// joined renders rules the way an operator reads them in iptables -S.
func joined(rules [][]string) []string {
	var out []string
	for _, r := range rules {
		out = append(out, restoreArgs(r))
	}
	return out
}

func TestPolicyRules(t *testing.T) {
	const (
		lo     = `-o lo -p tcp -m comment --comment "solstice-vm: deny this host (the loopback path)" -j REJECT --reject-with tcp-reset`
		loRest = `-o lo -m comment --comment "solstice-vm: deny this host (the loopback path)" -j REJECT --reject-with icmp-admin-prohibited`
		tenTC  = `-d 10.0.0.0/8 -p tcp -m comment --comment "solstice-vm: deny private network (RFC 1918)" -j REJECT --reject-with tcp-reset`
		tenIC  = `-d 10.0.0.0/8 -m comment --comment "solstice-vm: deny private network (RFC 1918)" -j REJECT --reject-with icmp-admin-prohibited`
		meta   = `-d 169.254.0.0/16 -p tcp -m comment --comment "solstice-vm: deny link-local, cloud metadata (RFC 3927)" -j REJECT --reject-with tcp-reset`
		ula6   = `-d fc00::/7 -m comment --comment "solstice-vm: deny unique local addresses (RFC 4193)" -j REJECT --reject-with icmp6-adm-prohibited`
	)
	tests := []struct {
		name   string
		p      Policy
		f      Family
		first  []string // the chain starts with these rules, in order
		has    []string // and holds these somewhere
		hasNot []string // substrings no rule may contain
	}{
		{name: "defaults", p: Policy{GID: 64999}, f: IPv4,
			first:  []string{lo},
			has:    []string{tenTC, tenIC, meta, `-d 100.64.0.0/10 -p tcp`, `-d 192.168.0.0/16 -p tcp`, `-d 172.16.0.0/12 -p tcp`, `-d 198.18.0.0/15 -p tcp`, `-d 224.0.0.0/4 -p tcp`},
			hasNot: []string{"RETURN", "198.51.100.", "192.0.2.", "203.0.113."}},
		{name: "allow a CIDR on a port", p: Policy{GID: 64999, Allow: mustAllow(t, "10.0.5.0/24:443")}, f: IPv4,
			first: []string{lo, loRest,
				`-d 10.0.5.0/24 -p tcp -m tcp --dport 443 -m comment --comment "solstice-vm: allow egress_allow 10.0.5.0/24:443" -j RETURN`,
				`-d 10.0.5.0/24 -p udp -m udp --dport 443 -m comment --comment "solstice-vm: allow egress_allow 10.0.5.0/24:443" -j RETURN`,
				`-d 0.0.0.0/8 -p tcp`}},
		{name: "allow an address on every port", p: Policy{GID: 64999, Allow: mustAllow(t, "192.168.1.10")}, f: IPv4,
			first: []string{lo, loRest, `-d 192.168.1.10/32 -m comment --comment "solstice-vm: allow egress_allow 192.168.1.10/32" -j RETURN`, `-d 0.0.0.0/8 -p tcp`}},
		{name: "allow a port range", p: Policy{GID: 1, Allow: mustAllow(t, "10.1.0.0/16:8000-8100")}, f: IPv4,
			has: []string{`-d 10.1.0.0/16 -p tcp -m tcp --dport 8000:8100 `}},
		{name: "IPv6 entries stay out of the IPv4 chain", p: Policy{GID: 1, Allow: mustAllow(t, "[fd00::/8]:22")}, f: IPv4,
			hasNot: []string{"fd00::"}},
		{name: "IPv6 allow and denies", p: Policy{GID: 1, Allow: mustAllow(t, "[fd00::/8]:22", "10.0.0.1")}, f: IPv6,
			first:  []string{lo, `-o lo -m comment`, `-d fd00::/8 -p tcp -m tcp --dport 22 -m comment --comment "solstice-vm: allow egress_allow [fd00::/8]:22" -j RETURN`},
			has:    []string{ula6, `-d fe80::/10 -p tcp`, `-d ::1/128 -p tcp`, `-d ff00::/8 -p tcp`, `-d 64:ff9b::a00:0/104 -p tcp`, `-d 64:ff9b::a9fe:0/112 -p tcp`},
			hasNot: []string{"10.0.0.1", "icmp-admin-prohibited"}},
		{name: "resolvers keep DNS, on their own family", p: Policy{GID: 1, Resolvers: addrs("10.255.255.53", "127.0.0.53", "fd00::53")}, f: IPv4,
			first: []string{
				`-d 10.255.255.53/32 -p tcp -m tcp --dport 53 -m comment --comment "solstice-vm: allow DNS to a resolver of the host (resolv.conf)" -j RETURN`,
				`-d 10.255.255.53/32 -p udp -m udp --dport 53 -m comment --comment "solstice-vm: allow DNS to a resolver of the host (resolv.conf)" -j RETURN`,
				`-d 127.0.0.53/32 -p tcp -m tcp --dport 53 `,
				`-d 127.0.0.53/32 -p udp -m udp --dport 53 `,
				lo, loRest, `-d 0.0.0.0/8 -p tcp`},
			hasNot: []string{"fd00::53"}},
		{name: "resolvers, then this host, then the allow-list", p: Policy{GID: 1, Allow: mustAllow(t, "10.9.0.0/16"), Resolvers: addrs("10.255.255.53")}, f: IPv4,
			first: []string{`-d 10.255.255.53/32 -p tcp`, `-d 10.255.255.53/32 -p udp`, lo, loRest, `-d 10.9.0.0/16 -m comment`}},
		{name: "host addresses are listed before the allow-list", p: Policy{GID: 1, Allow: mustAllow(t, "172.16.0.0/12", "192.0.2.0/24"),
			HostAddrs: addrs("127.0.0.1", "192.0.2.2", "172.26.64.1", "fd00::2")}, f: IPv4,
			first: []string{lo, loRest,
				`-d 192.0.2.2/32 -p tcp -m comment --comment "solstice-vm: deny an address of this host" -j REJECT --reject-with tcp-reset`,
				`-d 192.0.2.2/32 -m comment --comment "solstice-vm: deny an address of this host" -j REJECT --reject-with icmp-admin-prohibited`,
				`-d 172.26.64.1/32 -p tcp`, `-d 172.26.64.1/32 -m comment`,
				`-d 172.16.0.0/12 -m comment --comment "solstice-vm: allow egress_allow 172.16.0.0/12" -j RETURN`},
			hasNot: []string{"127.0.0.1/32", "fd00::2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := joined(tt.p.Rules(tt.f))
			for i, want := range tt.first {
				if i >= len(rules) || !strings.HasPrefix(rules[i], want) {
					t.Fatalf("rule %d: want %q, rules:\n%s", i+1, want, strings.Join(rules, "\n"))
				}
			}
			for _, want := range tt.has {
				if !slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, want) }) {
					t.Errorf("no rule %q in:\n%s", want, strings.Join(rules, "\n"))
				}
			}
			for _, bad := range tt.hasNot {
				if slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, bad) }) {
					t.Errorf("a rule mentions %q:\n%s", bad, strings.Join(rules, "\n"))
				}
			}
		})
	}
}

// TestRulesCoverTheDeniedRanges: every denied range has a TCP reset and a
// catch-all reject, and nothing the chain does ends in ACCEPT (that would
// skip the host's own OUTPUT rules).
func TestRulesCoverTheDeniedRanges(t *testing.T) {
	for _, f := range []Family{IPv4, IPv6} {
		rules := joined(Policy{GID: 7, Allow: mustAllow(t, "10.0.0.0/8", "[fd00::1]")}.Rules(f))
		for _, d := range deniedRanges(f) {
			n := 0
			for _, r := range rules {
				if strings.HasPrefix(r, "-d "+d.prefix.String()+" ") && strings.Contains(r, "REJECT") {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%s: %d reject rules for %s, want 2", f, n, d.prefix)
			}
		}
		for _, r := range rules {
			if strings.Contains(r, "ACCEPT") || strings.Contains(r, `\`) || strings.Count(r, `"`) != 2 {
				t.Errorf("%s: rule %q", f, r)
			}
		}
	}
}

func TestJumpMatchesTheGroupsNewConnections(t *testing.T) {
	got := restoreArgs(Policy{GID: 64999}.Jump())
	want := `-m owner --gid-owner 64999 -m conntrack --ctstate NEW -m comment --comment "solstice-vm: new connections of guests go through their egress policy" -j SOLSTICE-EGRESS-64999`
	if got != want {
		t.Fatalf("jump = %s\nwant   %s", got, want)
	}
	if n := len(ChainName(1<<31 - 2)); n > 28 {
		t.Fatalf("chain name for the largest gid is %d characters; iptables allows 28", n)
	}
}

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in   string
		want string // Allow.String(), or the error
		ok   bool
	}{
		{"10.0.5.0/24:443", "10.0.5.0/24:443", true},
		{"192.168.1.10", "192.168.1.10/32", true},
		{"192.168.1.10:22", "192.168.1.10/32:22", true},
		{"10.0.0.0/8:8000-8100", "10.0.0.0/8:8000-8100", true},
		{"fd00::/8", "fd00::/8", true},
		{"fd00::1", "fd00::1/128", true},
		{"[fd00::/8]:443", "[fd00::/8]:443", true},
		{"[fd00::1]", "fd00::1/128", true},
		{"::ffff:10.0.0.1", "10.0.0.1/32", true},
		{"10.0.5.0/33", "not a CIDR", false},
		{"10.0.5.1/24", "has bits set beyond /24 (did you mean 10.0.5.0/24?)", false},
		{"10.0.5.0/24:0", `port "0": want a number from 1 to 65535`, false},
		{"10.0.5.0/24:70000", `port "70000"`, false},
		{"10.0.5.0/24:", "empty port", false},
		{"10.0.5.0/24:https", `port "https"`, false},
		{"10.0.5.0/24:90-80", "port range 90-80 is backwards", false},
		{"forge.internal", "not an IP address or CIDR", false},
		{"", "no address", false},
		{"[fd00::1:443", "missing ]", false},
		{"[fd00::1]443", `unexpected "443" after ]`, false},
		{"fe80::1%eth0", "zone", false},
	}
	for _, tt := range tests {
		a, err := ParseAllow([]string{tt.in})
		switch {
		case tt.ok && err != nil:
			t.Errorf("ParseAllow(%q) = %v", tt.in, err)
		case tt.ok && a[0].String() != tt.want:
			t.Errorf("ParseAllow(%q) = %s, want %s", tt.in, a[0], tt.want)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ParseAllow(%q) = %v, want an error with %q", tt.in, err, tt.want)
		case !tt.ok && !strings.Contains(err.Error(), `entry 1 "`+tt.in+`"`):
			t.Errorf("ParseAllow(%q): error %q does not name the entry", tt.in, err)
		}
	}
}

func TestParseAllowReportsEveryBadEntry(t *testing.T) {
	_, err := ParseAllow([]string{"10.0.0.0/8", "bad", "10.0.0.0/8:x"})
	if err == nil || !strings.Contains(err.Error(), `entry 2 "bad"`) || !strings.Contains(err.Error(), `entry 3 "10.0.0.0/8:x"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseResolvConf(t *testing.T) {
	got := ParseResolvConf([]byte(`# generated
search lab.internal
nameserver 10.255.255.53
nameserver   fe80::1%eth0
nameserver 10.255.255.53
nameserver not-an-address
options edns0
nameserver 127.0.0.53
`))
	want := addrs("10.255.255.53", "fe80::1", "127.0.0.53")
	if !slices.Equal(got, want) {
		t.Fatalf("resolvers = %v, want %v", got, want)
	}
}
