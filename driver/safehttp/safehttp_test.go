package safehttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, c *http.Client, u string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func TestDeniedAddressesAreNeverDialled(t *testing.T) {
	c := NewClient(Options{ConnectTimeout: time.Second})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/",
		"http://[::ffff:169.254.169.254]/",
		"http://0.0.0.0:4646/v1/agent/self",
		"http://224.0.0.1/",
	} {
		_, err := get(t, c, u)
		if !errors.Is(err, ErrDeniedAddress) {
			t.Errorf("GET %s: %v, want %v", u, err, ErrDeniedAddress)
		}
	}
}

func TestNonHTTPSchemesAreRefused(t *testing.T) {
	u, _ := url.Parse("file:///etc/shadow")
	if err := CheckURL(u); err == nil || !strings.Contains(err.Error(), `scheme "file"`) {
		t.Fatalf("CheckURL(file://) = %v", err)
	}
}

// A name that resolves to a denied address is refused at dial time, after
// resolution, so DNS cannot route around the check.
func TestResolvedAddressIsChecked(t *testing.T) {
	if err := refuseAddress("tcp4", "169.254.169.254:80", nil); !errors.Is(err, ErrDeniedAddress) {
		t.Fatalf("refuseAddress = %v", err)
	}
	if err := refuseAddress("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
}

func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "downgraded")
	}))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/x", http.StatusFound))
	defer tls.Close()
	c := NewClient(Options{})
	c.Transport.(*checkedTransport).next.(*http.Transport).TLSClientConfig = tls.Client().Transport.(*http.Transport).TLSClientConfig
	_, err := get(t, c, tls.URL)
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("GET = %v, want %v", err, ErrDowngrade)
	}
	if !strings.Contains(err.Error(), "refused a redirect from https to http") {
		t.Errorf("message %q does not say why", err)
	}
}

// The allow-list is asked about a redirect's target as well as the first
// URL: an allowed host cannot bounce the driver elsewhere.
func TestRedirectTargetIsAllowListed(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	first := httptest.NewServer(http.RedirectHandler(other.URL+"/bundle/x", http.StatusFound))
	defer first.Close()
	fu, _ := url.Parse(first.URL)
	hosts, err := ParseHosts([]string{fu.Host + "/bundle/"})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(Options{Allow: hosts.Allow})
	_, err = get(t, c, first.URL+"/bundle/a")
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("GET = %v, want %v", err, ErrNotAllowed)
	}
}

// A server that sends headers and then nothing is given up on after the
// idle timeout, not waited for forever.
func TestIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c := NewClient(Options{IdleTimeout: 300 * time.Millisecond})
	resp, err := get(t, c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("read = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stall took %s to notice", d)
	}
}

func TestHeaderStallTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := NewClient(Options{IdleTimeout: 300 * time.Millisecond})
	if _, err := get(t, c, srv.URL); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("GET = %v, want a timeout", err)
	}
}

func TestSizeCap(t *testing.T) {
	body := strings.Repeat("x", 100)
	for _, tt := range []struct {
		max  int64
		fail bool
	}{{100, false}, {99, true}, {0, false}} {
		got, err := io.ReadAll(LimitReader(strings.NewReader(body), tt.max))
		if tt.fail != errors.Is(err, ErrTooLarge) {
			t.Errorf("max %d: err = %v", tt.max, err)
		}
		if !tt.fail && string(got) != body {
			t.Errorf("max %d: read %d bytes", tt.max, len(got))
		}
		if tt.fail && int64(len(got)) > tt.max {
			t.Errorf("max %d: %d bytes came through", tt.max, len(got))
		}
	}
	resp := &http.Response{ContentLength: 101}
	if err := CheckLength(resp, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckLength = %v", err)
	}
}

func TestHostsAllow(t *testing.T) {
	hosts, err := ParseHosts([]string{"127.0.0.1/bundle/", "[::1]/bundle", "localhost:8080", "Bundles.Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want string // "" allowed, else part of the error
	}{
		{"http://127.0.0.1:39211/bundle/0123abcd/solstice-run-1.bundle", ""},
		{"http://[::1]:39211/bundle/x", ""},
		{"http://localhost:8080/anything", ""},
		{"https://bundles.example.com/repo.bundle", ""},
		{"http://127.0.0.1:4646/v1/agent/self", "127.0.0.1:4646/v1/agent/self is not matched"},
		{"http://127.0.0.1:39211/bundle/../v1/kv", "not clean"},
		{"http://127.0.0.1:39211/bundle/%2e%2e/v1/kv", "not clean"},
		{"http://127.0.0.1:39211/bundlex/y", "not matched"},
		{"http://localhost:8081/x", "not matched"},
		{"http://evil.example/x", "evil.example:80/x is not matched by any of [127.0.0.1/bundle/, [::1]/bundle, localhost:8080, Bundles.Example.com]"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		err = hosts.Allow(u)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s refused: %v", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.url, err, tt.want)
		}
	}
}

func TestParseHostsRefusesBadEntries(t *testing.T) {
	_, err := ParseHosts([]string{"169.254.169.254", "[fe80::1]:80", "host:http", "", "h/a/../b"})
	for _, want := range []string{
		`"169.254.169.254": never allowed: denied address: 169.254.169.254 is link-local`,
		`"[fe80::1]:80": never allowed`,
		`"host:http": port "http"`,
		`"": no host`,
		`"h/a/../b": the path prefix must be clean`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHosts error %v lacks %q", err, want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for a, denied := range map[string]bool{
		"169.254.169.254": true, "fe80::1": true, "0.0.0.0": true, "::": true,
		"127.0.0.1": false, "198.51.100.7": false, "10.0.0.1": false,
	} {
		if err := CheckAddr(netip.MustParseAddr(a)); (err != nil) != denied {
			t.Errorf("CheckAddr(%s) = %v", a, err)
		}
	}
}

func TestRedact(t *testing.T) {
	u, _ := url.Parse("https://user:pw@example.com/a?token=secret")
	if got := Redact(u); strings.Contains(got, "secret") || strings.Contains(got, "pw") {
		t.Errorf("Redact = %q", got)
	}
}
