package protocol

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clientAssertionType is VssOAuthConstants.JwtBearerClientAssertionType.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// TokenSource exchanges a signed JWT assertion for the runner's OAuth access
// token at Credentials.AuthorizationURL (VssOAuthJwtBearerAssertion,
// VssOAuthTokenHttpClient), and caches it until shortly before it expires.
// It is safe for concurrent use.
type TokenSource struct {
	creds *Credentials
	hc    *http.Client
	// UserAgent overrides DefaultUserAgent for the token request.
	UserAgent string
	now       func() time.Time

	mu     sync.Mutex
	key    *rsa.PrivateKey
	token  string
	expiry time.Time
}

// NewTokenSource returns a TokenSource for c; hc may be nil.
func NewTokenSource(c *Credentials, hc *http.Client) *TokenSource {
	return &TokenSource{creds: c, hc: hc, now: time.Now}
}

// Token returns a cached access token or fetches a new one.
func (ts *TokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && ts.now().Before(ts.expiry) {
		return ts.token, nil
	}
	tok, ttl, err := ts.fetch(ctx)
	if err != nil {
		return "", err
	}
	ts.token, ts.expiry = tok, ts.now().Add(ttl)
	return tok, nil
}

// Invalidate drops the cached token; the next Token re-authenticates.
func (ts *TokenSource) Invalidate() {
	ts.mu.Lock()
	ts.token = ""
	ts.mu.Unlock()
}

// tokenResponse is VssOAuthTokenResponse.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (ts *TokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	const op = "protocol: fetch runner OAuth token"
	assertion, err := ts.assertion()
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", op, err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}
	c := call{op: op, method: http.MethodPost, url: ts.creds.AuthorizationURL, body: []byte(form.Encode()),
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}
	ua := ts.UserAgent
	if ua == "" {
		ua = DefaultUserAgent("")
	}
	r, err := c.do(ctx, ts.hc, ua, "")
	if err != nil {
		return "", 0, err
	}
	if !r.ok() {
		return "", 0, c.errorFor(r)
	}
	var tr tokenResponse
	if err := decode(op, r.body, &tr); err != nil {
		return "", 0, err
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("%s: no access_token in response (error %q: %s)", op, tr.Error, tr.ErrorDescription)
	}
	return tr.AccessToken, cacheFor(tr.ExpiresIn), nil
}

// cacheFor: until one minute (or a tenth of the lifetime, if shorter)
// before expiry; five minutes when the server gives no lifetime.
func cacheFor(expiresIn int64) time.Duration {
	if expiresIn <= 0 {
		return 5 * time.Minute
	}
	life := time.Duration(expiresIn) * time.Second
	margin := min(time.Minute, life/10)
	return life - margin
}

// assertion builds the client assertion: iss = sub = clientId,
// aud = authorizationUrl, jti = random GUID, nbf/iat now-30s, exp now+5m;
// PS256 when RequireFIPS, else RS256 (VssSigningCredentials).
func (ts *TokenSource) assertion() (string, error) {
	if ts.creds == nil || ts.creds.ClientID == "" || ts.creds.AuthorizationURL == "" {
		return "", errors.New("credentials lack client_id/authorization_url")
	}
	if ts.key == nil {
		k, err := ts.creds.PrivateKey()
		if err != nil {
			return "", err
		}
		ts.key = k
	}
	now := ts.now()
	claims := jwt.MapClaims{
		"iss": ts.creds.ClientID,
		"sub": ts.creds.ClientID,
		"aud": ts.creds.AuthorizationURL,
		"jti": newUUID(),
		"nbf": now.Add(-30 * time.Second).Unix(),
		"iat": now.Add(-30 * time.Second).Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
	var method jwt.SigningMethod = jwt.SigningMethodRS256
	if ts.creds.RequireFIPS {
		method = jwt.SigningMethodPS256
	}
	return jwt.NewWithClaims(method, claims).SignedString(ts.key)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
