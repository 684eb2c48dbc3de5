package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	servicePath = "twirp/github.actions.results.api.v1.ArtifactService/"
	// maxAnswer bounds a Twirp answer; a listing of many artifacts stays
	// far below it.
	maxAnswer = 4 << 20
	// DefaultBlockSize is the upload block: the only buffer an upload
	// holds, whatever the artifact's size.
	DefaultBlockSize = 8 << 20
	// maxBlocks is Azure's limit per blob, which Gitea shares in practice.
	maxBlocks = 50000
)

// Client talks to one forge's ArtifactService for one job.
type Client struct {
	base      *url.URL // ACTIONS_RESULTS_URL
	token     string
	ids       backendIDs
	http      *http.Client
	blockSize int
	retries   int
	backoff   time.Duration
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 10 min timeout
// per request, which bounds a block PUT and each Twirp call).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithBlockSize sets the upload block size.
func WithBlockSize(n int) Option { return func(c *Client) { c.blockSize = n } }

// WithRetries sets how often a failed block PUT or download is retried
// and the first backoff (doubled each time).
func WithRetries(n int, backoff time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = n, backoff }
}

// New makes a client for the results service at resultsURL, authenticated
// by the job's runtime token.
func New(resultsURL, token string, opts ...Option) (*Client, error) {
	base, err := parseHTTPURL(resultsURL)
	if err != nil {
		return nil, fmt.Errorf("results URL: %w", err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	ids, err := idsFromToken(token)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, token: token, ids: ids, http: &http.Client{Timeout: 10 * time.Minute},
		blockSize: DefaultBlockSize, retries: 5, backoff: time.Second}
	for _, o := range opts {
		o(c)
	}
	if c.blockSize <= 0 {
		return nil, errors.New("block size must be positive")
	}
	return c, nil
}

// parseHTTPURL accepts only absolute http(s) URLs: the forge's answers
// choose where we send data, and nothing but HTTP may be reached.
func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", redactURL(s))
	}
	return u, nil
}

// redactURL drops a URL's query, where signed URLs keep their signature.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// call posts one Twirp JSON request and decodes the answer into out.
func (c *Client) call(ctx context.Context, method string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", method, err)
	}
	u := c.base.JoinPath(servicePath + method)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("make %s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("read %s answer: %w", method, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s answer is larger than %d bytes", method, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Op: method, Code: resp.StatusCode, Msg: twirpMessage(data)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", method, err)
	}
	return nil
}

// StatusError is a forge's refusal.
type StatusError struct {
	Op   string
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Code)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Code, e.Msg)
}

// IsNotFound tells whether err is the forge saying "no such artifact".
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// twirpMessage is the msg of a Twirp error body, or the body's first line,
// printable and short: it ends up in the step's log.
func twirpMessage(data []byte) string {
	var te struct {
		Msg string `json:"msg"`
	}
	s := string(data)
	if json.Unmarshal(data, &te) == nil && te.Msg != "" {
		s = te.Msg
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// int64JSON is a protojson int64: a JSON string or number.
type int64JSON int64

func (n *int64JSON) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an int64: %.40s", b)
	}
	*n = int64JSON(v)
	return nil
}
