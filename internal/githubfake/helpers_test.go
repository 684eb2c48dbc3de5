package githubfake

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tc is a minimal hand-written runner client for driving the fake.
type tc struct {
	t        *testing.T
	s        *Server
	key      *rsa.PrivateKey
	clientID string
	authURL  string
	alg      jwt.SigningMethod
	token    string
	session  string
}

type resp struct {
	status int
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func do(t *testing.T, method, u string, hdr map[string]string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, data}
}

func (c *tc) assertion(mutate func(jwt.MapClaims)) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": c.clientID, "sub": c.clientID, "aud": c.authURL, "jti": newGUID(),
		"nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	if mutate != nil {
		mutate(claims)
	}
	tok, err := jwt.NewWithClaims(c.alg, claims).SignedString(c.key)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

func (c *tc) tokenRequest(form url.Values) resp {
	c.t.Helper()
	return do(c.t, "POST", c.authURL, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form.Encode())
}

func (c *tc) authenticate() {
	c.t.Helper()
	r := c.tokenRequest(url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {c.assertion(nil)},
	})
	if r.status != 200 {
		c.t.Fatalf("auth: %d %s", r.status, r.body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	r.json(c.t, &out)
	c.token = out.AccessToken
}

func (c *tc) auth() map[string]string { return map[string]string{"Authorization": "Bearer " + c.token} }

func (c *tc) createSession(id uint64, name string) resp {
	c.t.Helper()
	return do(c.t, "POST", c.s.BrokerURL()+"session", c.auth(), map[string]any{
		"sessionId": zeroGUID, "ownerName": "host (PID: 1)", "useFipsEncryption": false,
		"agent": map[string]any{"id": id, "name": name, "version": "2.336.0", "osDescription": "illumos"},
	})
}

func (c *tc) openSession(id uint64, name string) {
	c.t.Helper()
	r := c.createSession(id, name)
	if r.status != 200 {
		c.t.Fatalf("session: %d %s", r.status, r.body)
	}
	var out struct {
		SessionID string `json:"sessionId"`
	}
	r.json(c.t, &out)
	c.session = out.SessionID
}

func (c *tc) poll(status string) resp {
	c.t.Helper()
	q := url.Values{"sessionId": {c.session}, "status": {status}, "runnerVersion": {"2.336.0"},
		"os": {"Linux"}, "architecture": {"X64"}, "disableUpdate": {"true"}}
	return do(c.t, "GET", c.s.BrokerURL()+"message?"+q.Encode(), c.auth(), nil)
}

// jitClient decodes a JIT config the way a runner would.
func jitClient(t *testing.T, s *Server, cfg string) (*tc, uint64, string) {
	t.Helper()
	files := map[string]map[string]any{}
	outer, err := base64.StdEncoding.DecodeString(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var enc map[string]string
	if err := json.Unmarshal(outer, &enc); err != nil {
		t.Fatal(err)
	}
	for name, b64 := range enc {
		raw, _ := base64.StdEncoding.DecodeString(b64)
		m := map[string]any{}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		files[name] = m
	}
	data := files[".credentials"]["Data"].(map[string]any)
	c := &tc{t: t, s: s, clientID: data["clientId"].(string), authURL: data["authorizationUrl"].(string), alg: jwt.SigningMethodPS256}
	if data["requireFipsCryptography"] == "False" {
		c.alg = jwt.SigningMethodRS256
	}
	c.key = keyFromParams(t, files[".credentials_rsaparams"])
	r := files[".runner"]
	id, _ := new(big.Int).SetString(r["AgentId"].(string), 10)
	return c, id.Uint64(), r["AgentName"].(string)
}

func keyFromParams(t *testing.T, p map[string]any) *rsa.PrivateKey {
	b := func(k string) *big.Int {
		raw, err := base64.StdEncoding.DecodeString(p[k].(string))
		if err != nil {
			t.Fatal(err)
		}
		return new(big.Int).SetBytes(raw)
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: b("modulus"), E: int(b("exponent").Int64())},
		D:         b("d"), Primes: []*big.Int{b("p"), b("q")},
	}
	k.Precompute()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	return k
}

func noRejections(t *testing.T, s *Server) {
	t.Helper()
	for _, r := range s.Rejections() {
		t.Errorf("unexpected rejection: %s", r)
	}
}

func expectRejection(t *testing.T, s *Server, before int, substr string) {
	t.Helper()
	rs := s.Rejections()
	if len(rs) <= before {
		t.Fatalf("expected a rejection containing %q, got none", substr)
	}
	if last := rs[len(rs)-1]; !strings.Contains(last.Reason, substr) {
		t.Fatalf("last rejection %q does not contain %q", last, substr)
	}
}
