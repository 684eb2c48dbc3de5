// Package safehttp is how the driver downloads what its config or a task
// names (catalog images, repository bundles). Every download is bounded:
// a connect timeout, an idle timeout (a server that stops sending is given
// up on, one that is merely slow is not) and a size cap. It never dials a
// link-local, unspecified or multicast address (169.254.169.254 is where
// cloud metadata and its credentials live), never follows a redirect from
// https down to http, and can ask an allow-list about every URL it
// requests, redirects included.
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Default timeouts, for callers that have no reason to pick others.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
)

// maxRedirects is as many as net/http follows by default.
const maxRedirects = 10

// Options shape a Client.
type Options struct {
	// ConnectTimeout bounds the TCP connect and, for https, the TLS
	// handshake. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout is the longest the client waits for the next bytes, the
	// response headers included. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Allow, when set, is asked about every URL before it is requested,
	// each redirect's target included; its error refuses the request.
	Allow func(u *url.URL) error
	// UseProxy takes a proxy from the environment (HTTPS_PROXY, …). Leave
	// it off where the address check matters: through a proxy the client
	// never sees the address of the server it asks for.
	UseProxy bool
}

// NewClient returns an http.Client that applies o. It has no overall
// deadline: a large image may take hours on a slow link, so callers bound
// a download with their context, and the idle timeout catches a stall.
func NewClient(o Options) *http.Client {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout, Control: refuseAddress}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: o.IdleTimeout}, nil
		},
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.IdleTimeout,
		// One download per connection: nothing is gained by pooling, and
		// a pooled connection would outlive the download's checks.
		DisableKeepAlives: true,
	}
	if o.UseProxy {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &http.Client{Transport: &checkedTransport{next: tr, allow: o.Allow}, CheckRedirect: checkRedirect}
}

// checkedTransport asks the allow-list about each request, so a redirect's
// target is checked exactly like the first URL.
type checkedTransport struct {
	next  http.RoundTripper
	allow func(*url.URL) error
}

func (t *checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := CheckURL(req.URL); err != nil {
		return nil, err
	}
	if t.allow != nil {
		if err := t.allow(req.URL); err != nil {
			return nil, err
		}
	}
	return t.next.RoundTrip(req)
}

// ErrDowngrade refuses a redirect from https to http: it would hand the
// rest of the download to anyone on the path.
var ErrDowngrade = errors.New("refused a redirect from https to http")

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if prev := via[len(via)-1]; prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w (%s to %s)", ErrDowngrade, Redact(prev.URL), Redact(req.URL))
	}
	return nil
}

// CheckURL refuses what no download may use: a scheme other than http or
// https, and a host written as a denied address.
func CheckURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("the URL has no host")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		return CheckAddr(a)
	}
	return nil
}

// ErrDeniedAddress is a destination no download may reach.
var ErrDeniedAddress = errors.New("denied address")

// CheckAddr refuses link-local addresses (cloud metadata at 169.254.169.254
// and fe80::/10), the unspecified address (which Linux connects to this
// host's own loopback) and multicast.
func CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is link-local (where cloud metadata and its credentials are served)", ErrDeniedAddress, a)
	case a.IsUnspecified():
		return fmt.Errorf("%w: %s is the unspecified address", ErrDeniedAddress, a)
	case a.IsMulticast():
		return fmt.Errorf("%w: %s is multicast", ErrDeniedAddress, a)
	}
	return nil
}

// refuseAddress runs after name resolution, before connect: whatever a
// name resolves to, a denied address is never dialled.
func refuseAddress(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return CheckAddr(ap.Addr())
}

// idleConn pushes its deadline forward before every read and write, which
// turns a fixed deadline into an idle timeout.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// ErrTooLarge is a download over its size cap.
var ErrTooLarge = errors.New("over the size cap")

// CheckLength refuses a response whose announced length already exceeds
// max more bytes, before any of it is read.
func CheckLength(resp *http.Response, max int64) error {
	if max > 0 && resp.ContentLength > max {
		return fmt.Errorf("%w: the server announces %d bytes, the cap allows %d", ErrTooLarge, resp.ContentLength, max)
	}
	return nil
}

// LimitReader returns r, failing with ErrTooLarge once more than max bytes
// have come through (a server may send more than it announced). A max of
// zero or less means no cap.
func LimitReader(r io.Reader, max int64) io.Reader {
	if max <= 0 {
		return r
	}
	return &limitReader{r: r, left: max, max: max}
}

type limitReader struct {
	r         io.Reader
	left, max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, fmt.Errorf("%w of %d bytes", ErrTooLarge, l.max)
	}
	// Read one byte beyond the cap, so a body of exactly max bytes passes
	// and one byte more fails.
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - int(-l.left), fmt.Errorf("%w of %d bytes", ErrTooLarge, l.max)
	}
	return n, err
}

// Redact drops a URL's query and user info, where access tokens travel.
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "…"
	}
	return c.String()
}
