package isolation

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// ResolvConf is where QEMU's user network (libslirp) finds the resolvers
// it forwards the guest's DNS to; it reads no other file.
const ResolvConf = "/etc/resolv.conf"

// Resolvers reads the nameservers of a resolv.conf.
func Resolvers(path string) ([]netip.Addr, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the host's resolvers: %w", err)
	}
	return ParseResolvConf(data), nil
}

// ParseResolvConf returns the nameserver addresses in resolv.conf syntax,
// skipping what is not an address (a zone is dropped: the rule matches the
// address).
func ParseResolvConf(data []byte) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		a = a.WithZone("").Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// HostAddrs lists the addresses of this network namespace's interfaces
// (the driver runs in the host's), bridges and all.
func HostAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// IPv6Enabled reports whether the kernel has IPv6 at all; without it there
// is no ip6tables table to fill, and nothing to filter.
func IPv6Enabled() bool {
	_, err := os.Stat("/proc/net/if_inet6")
	return err == nil
}
