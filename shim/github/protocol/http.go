package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultRunnerVersion is the actions/runner release this package reports
// by default (src/runnerversion of the snapshot it was written against).
// GitHub stops sending jobs to releases older than about 30 days, so this
// must be kept current (or overridden through RunnerInfo.Version).
const DefaultRunnerVersion = "2.336.0"

// DefaultUserAgent is the User-Agent used when none is configured.
//
// The official runner sends "GitHubActionsRunner-<os>-<arch>/<version>"
// followed by ClientId/…, RunnerId/…, GroupId/…, CommitSHA/…, Pid/…,
// CreationTime/… and "(Listener)" or "(Worker)" (Runner.Common/HostContext.cs
// LoadDefaultUserAgents). GitHub's answers can depend on it (runner-
// registration returned a different tenant URL without one), so the default
// keeps the runner's product token and says who we are in a comment.
func DefaultUserAgent(version string) string {
	if version == "" {
		version = DefaultRunnerVersion
	}
	return "GitHubActionsRunner-linux-x64/" + version + " (solstice)"
}

// maxBody bounds how much of a response body is read.
const maxBody = 64 << 20

// HTTPError is a non-success HTTP answer. It is returned wrapped, so use
// errors.As to inspect the status.
type HTTPError struct {
	Op         string // what was being done
	Method     string
	URL        string
	StatusCode int
	Body       string // a snippet of the response body
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: %s %s: HTTP %d: %s", e.Op, e.Method, e.URL, e.StatusCode, e.Body)
}

func snippet(b []byte) string {
	const n = 512
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "…[truncated]"
	}
	return s
}

// call is one HTTP request; body may be nil.
type call struct {
	op, method, url string
	body            []byte
	header          http.Header
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) ok() bool { return r.status >= 200 && r.status < 300 }

func (c call) errorFor(r reply) *HTTPError {
	return &HTTPError{Op: c.op, Method: c.method, URL: redactURL(c.url), StatusCode: r.status, Body: snippet(r.body)}
}

// do sends the request. authz is the full Authorization header value or "".
func (c call) do(ctx context.Context, hc *http.Client, ua, authz string) (reply, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, body)
	if err != nil {
		return reply{}, fmt.Errorf("%s: %w", c.op, err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", ua)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := httpClient(hc).Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s: %s %s: %w", c.op, c.method, redactURL(c.url), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return reply{}, fmt.Errorf("%s: reading response: %w", c.op, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func httpClient(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	return http.DefaultClient
}

// jsonCall builds a call with a JSON body.
func jsonCall(op, method, u string, v any) (call, error) {
	c := call{op: op, method: method, url: u, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}
	if v == nil {
		return c, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return c, fmt.Errorf("%s: encoding request: %w", op, err)
	}
	c.body = b
	return c, nil
}

// decode unmarshals a JSON response leniently (unknown fields ignored,
// a UTF-8 BOM tolerated).
func decode(op string, data []byte, v any) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: decoding response: %w (body: %s)", op, err, snippet(data))
	}
	return nil
}

// joinURL appends a relative path to base, treating base as a directory
// ("{base}/rel"), keeping the base's query. The official runner resolves
// with new Uri(base, rel); the two agree for the slash-terminated URLs GitHub
// hands out, and appending is what every other client does.
func joinURL(base, rel string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %w", base, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("invalid URL %q: not absolute", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(rel, "/")
	u.RawPath = ""
	return u.String(), nil
}

// withQuery sets query parameters on u.
func withQuery(u string, q url.Values) string {
	if len(q) == 0 {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

// redactURL drops the query of signed URLs (they carry a SAS signature).
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 && strings.Contains(s[i:], "sig=") {
		return s[:i] + "?…"
	}
	return s
}
