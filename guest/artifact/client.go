package artifact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/guest/results"
)

const servicePath = "twirp/github.actions.results.api.v1.ArtifactService/"

// Client talks to one forge's ArtifactService for one job.
type Client struct {
	base  *url.URL // ACTIONS_RESULTS_URL
	token string
	ids   backendIDs
	tr    *results.Transport
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.tr.HTTP = h } }

// WithBlockSize sets the upload block size.
func WithBlockSize(n int) Option { return func(c *Client) { c.tr.BlockSize = n } }

// WithRetries sets how often a failed block PUT or download is retried
// and the first backoff (doubled each time).
func WithRetries(n int, backoff time.Duration) Option {
	return func(c *Client) { c.tr.Retries, c.tr.Backoff = n, backoff }
}

// New makes a client for the results service at resultsURL, authenticated
// by the job's runtime token.
func New(resultsURL, token string, opts ...Option) (*Client, error) {
	base, err := results.ParseHTTPURL(resultsURL)
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
	c := &Client{base: base, token: token, ids: ids, tr: results.NewTransport()}
	for _, o := range opts {
		o(c)
	}
	if c.tr.BlockSize <= 0 {
		return nil, errors.New("block size must be positive")
	}
	return c, nil
}

func (c *Client) call(ctx context.Context, method string, in, out any) error {
	return c.tr.Call(ctx, c.base, servicePath+method, c.token, in, out)
}

// StatusError is a forge's refusal.
type StatusError = results.StatusError

// IsNotFound tells whether err is the forge saying "no such artifact".
func IsNotFound(err error) bool { return results.HasStatus(err, http.StatusNotFound) }

// int64JSON is a protojson int64.
type int64JSON = results.Int64
