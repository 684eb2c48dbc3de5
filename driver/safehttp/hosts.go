package safehttp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Hosts is an operator's allow-list of where downloads may come from. Each
// entry is HOST, HOST:PORT, or either followed by a path prefix:
//
//	127.0.0.1/bundle/      any port on 127.0.0.1, paths under /bundle/
//	[::1]:8080             one port, any path
//	bundles.example.com    any port, any path
//
// A HOST without a port matches every port; a prefix matches whole path
// segments. Names are compared as written: "localhost" does not match a
// URL that says 127.0.0.1.
type Hosts struct {
	rules []hostRule
}

type hostRule struct {
	entry  string // as the operator wrote it, for messages
	host   string // lower-case name, or an address in netip's form
	port   string // "" for any
	prefix string // "" for any, else a clean path ending in "/"
}

// ErrNotAllowed is a URL no allow-list entry matches.
var ErrNotAllowed = errors.New("not on the allow-list")

// ParseHosts checks every entry and reports all the bad ones at once.
func ParseHosts(entries []string) (Hosts, error) {
	var h Hosts
	var errs []error
	for _, e := range entries {
		r, err := parseHostRule(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", e, err))
			continue
		}
		h.rules = append(h.rules, r)
	}
	return h, errors.Join(errs...)
}

func parseHostRule(entry string) (hostRule, error) {
	r := hostRule{entry: entry}
	hostport := strings.TrimSpace(entry)
	if i := strings.IndexByte(hostport, '/'); i >= 0 {
		hostport, r.prefix = hostport[:i], hostport[i:]
		if !isCleanPath(r.prefix) {
			return r, errors.New("the path prefix must be clean (no '.', '..' or '//')")
		}
		r.prefix = strings.TrimSuffix(r.prefix, "/") + "/"
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return r, err
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := CheckAddr(a); err != nil {
			return r, fmt.Errorf("never allowed: %w", err)
		}
		host = a.Unmap().String()
	}
	r.host, r.port = strings.ToLower(host), port
	return r, nil
}

// splitHostPort accepts a bare IPv6 address as a host without a port.
func splitHostPort(s string) (host, port string, err error) {
	switch {
	case s == "":
		return "", "", errors.New("no host")
	case strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "["):
		return s, "", nil
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		return s[1 : len(s)-1], "", nil
	case strings.Contains(s, ":"):
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return "", "", err
		}
		if host == "" {
			return "", "", errors.New("no host")
		}
		return host, port, nil
	}
	return s, "", nil
}

// Allow reports whether an entry matches u; its error names the URL's host
// and the whole list, so an operator sees at once what to add.
func (h Hosts) Allow(u *url.URL) error {
	p := u.Path
	if p == "" {
		p = "/"
	}
	if !isCleanPath(p) || hasEncodedSeparator(u.EscapedPath()) {
		// A server may clean the path itself and so serve what a prefix
		// was meant to keep out.
		return fmt.Errorf("%w: the path %q is not clean", ErrNotAllowed, p)
	}
	host, port := urlHost(u)
	for _, r := range h.rules {
		if r.host == host && (r.port == "" || r.port == port) && underPrefix(p, r.prefix) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s%s is not matched by any of [%s]", ErrNotAllowed,
		net.JoinHostPort(host, port), p, strings.Join(h.Entries(), ", "))
}

// Entries lists the allow-list as written.
func (h Hosts) Entries() []string {
	out := make([]string, len(h.rules))
	for i, r := range h.rules {
		out[i] = r.entry
	}
	return out
}

func urlHost(u *url.URL) (host, port string) {
	host = strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	port = u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return host, port
}

func underPrefix(p, prefix string) bool {
	return prefix == "" || strings.HasPrefix(p, prefix)
}

// isCleanPath accepts an absolute path that path.Clean leaves alone, a
// trailing slash allowed.
func isCleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	c := path.Clean(p)
	return c == p || (c+"/" == p)
}

func hasEncodedSeparator(escaped string) bool {
	l := strings.ToLower(escaped)
	return strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(l, "%2e")
}
