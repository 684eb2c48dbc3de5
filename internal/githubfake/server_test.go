package githubfake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func xmlPublicKey(k *rsa.PrivateKey) string {
	e := big.NewInt(int64(k.E)).Bytes()
	return "<RSAKeyValue><Modulus>" + base64.StdEncoding.EncodeToString(k.N.Bytes()) +
		"</Modulus><Exponent>" + base64.StdEncoding.EncodeToString(e) + "</Exponent></RSAKeyValue>"
}

// register runs the runner-admin registration flow and returns a client.
func register(t *testing.T, s *Server, version string) (*tc, uint64, resp) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	reg := s.RegistrationToken("o/r")
	remote := map[string]string{"Authorization": "RemoteAuth " + reg}
	r := do(t, "POST", s.APIURL()+"/actions/runner-registration", remote,
		map[string]string{"url": s.GitHubURL("o/r"), "runner_event": "register"})
	if r.status != 200 {
		t.Fatalf("runner-registration: %d %s", r.status, r.body)
	}
	if r = do(t, "GET", s.APIURL()+"/repos/o/r/actions/runner-groups", remote, nil); r.status != 200 {
		t.Fatalf("runner-groups: %d %s", r.status, r.body)
	}
	r = do(t, "POST", s.APIURL()+"/actions/runners/register", remote, map[string]any{
		"url": s.GitHubURL("o/r"), "group_id": 1, "name": "r1", "version": version,
		"updates_disabled": true, "ephemeral": true, "public_key": xmlPublicKey(key),
		"labels": []map[string]any{{"id": 0, "name": "self-hosted", "type": "system"}, {"id": 0, "name": "illumos", "type": "user"}},
	})
	if r.status != 200 {
		return nil, 0, r
	}
	var out struct {
		ID            uint64 `json:"id"`
		Authorization struct {
			AuthorizationURL string `json:"authorization_url"`
			ServerURL        string `json:"server_url"`
			ClientID         string `json:"client_id"`
		} `json:"authorization"`
	}
	r.json(t, &out)
	if out.Authorization.ServerURL != s.BrokerURL() {
		t.Errorf("server_url = %q", out.Authorization.ServerURL)
	}
	c := &tc{t: t, s: s, key: key, clientID: out.Authorization.ClientID,
		authURL: out.Authorization.AuthorizationURL, alg: jwt.SigningMethodPS256}
	return c, out.ID, r
}

func TestRegistrationAuthAndSessionConflict(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c, id, _ := register(t, s, "2.336.0")
	c.authenticate()
	c.openSession(id, "r1")
	if r := c.createSession(id, "r1"); r.status != 409 {
		t.Fatalf("second session: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", s.BrokerURL()+"session", c.auth(), nil); r.status != 200 {
		t.Fatalf("delete session: %d", r.status)
	}
	c.openSession(id, "r1")
	got := s.Counters()
	if got.AuthCalls != 1 || got.SessionsCreated != 2 || got.SessionsDeleted != 1 {
		t.Errorf("counters = %+v", got)
	}
	rs := s.Rejections()
	if len(rs) != 1 || rs[0].Status != 409 {
		t.Errorf("rejections = %v, want exactly the 409", rs)
	}
}

func TestRegisterRefusesOldVersion(t *testing.T) {
	s := New(Options{MinRunnerVersion: "2.329.0"})
	defer s.Close()
	if _, _, r := register(t, s, "2.300.0"); r.status != 404 {
		t.Fatalf("old version register: %d %s", r.status, r.body)
	}
	expectRejection(t, s, 0, "out of date")
}

func TestBadAssertions(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	c, _, _ := register(t, s, "2.336.0")
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientAssertionType}}
	}
	cases := []struct {
		name   string
		form   func() url.Values
		reason string
	}{
		{"wrong audience", func() url.Values {
			f := good()
			f.Set("client_assertion", c.assertion(func(m jwt.MapClaims) { m["aud"] = "https://example.com" }))
			return f
		}, "audience"},
		{"sub differs from iss", func() url.Values {
			f := good()
			f.Set("client_assertion", c.assertion(func(m jwt.MapClaims) { m["sub"] = newGUID() }))
			return f
		}, "subject"},
		{"expired", func() url.Values {
			f := good()
			f.Set("client_assertion", c.assertion(func(m jwt.MapClaims) { m["exp"] = time.Now().Add(-time.Hour).Unix() }))
			return f
		}, "expired"},
		{"RS256 when FIPS required", func() url.Values {
			rs := *c
			rs.alg = jwt.SigningMethodRS256
			f := good()
			f.Set("client_assertion", rs.assertion(nil))
			return f
		}, "PS256 required"},
		{"wrong key", func() url.Values {
			bad := *c
			bad.key = other
			f := good()
			f.Set("client_assertion", bad.assertion(nil))
			return f
		}, "verification"},
		{"wrong grant_type", func() url.Values {
			f := good()
			f.Set("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
			f.Set("client_assertion", c.assertion(nil))
			return f
		}, "grant_type"},
		{"wrong assertion type", func() url.Values {
			f := good()
			f.Set("client_assertion_type", "jwt")
			f.Set("client_assertion", c.assertion(nil))
			return f
		}, "client_assertion_type"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Rejections())
			if r := c.tokenRequest(tt.form()); r.status != 400 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			expectRejection(t, s, before, tt.reason)
		})
	}
}

func TestUnauthorizedInjectionForcesReauth(t *testing.T) {
	s := New(Options{PollTimeout: 50 * time.Millisecond})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("jit-1", []string{"illumos"}))
	c.authenticate()
	c.openSession(id, name)
	s.ForceUnauthorized(1)
	if r := c.poll("Online"); r.status != 401 {
		t.Fatalf("injected poll: %d", r.status)
	}
	if r := c.poll("Online"); r.status != 401 {
		t.Fatalf("poll with revoked token: %d", r.status)
	}
	c.authenticate()
	if r := c.poll("Online"); r.status != 202 {
		t.Fatalf("poll after re-auth: %d %s", r.status, r.body)
	}
	if got := s.Counters(); got.Unauthorized != 2 || got.TokensIssued != 2 {
		t.Errorf("counters = %+v", got)
	}
}

func TestBrokerRejectsOldRunnerVersion(t *testing.T) {
	s := New(Options{MinRunnerVersion: "2.400.0"})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("jit-1", nil))
	c.authenticate()
	c.openSession(id, name)
	r := c.poll("Online")
	var e brokerError
	r.json(t, &e)
	if r.status != 403 || e.Source != "actions-broker-listener" || e.ErrorKind != "RunnerVersionTooOld" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestRS256WhenFIPSNotRequired(t *testing.T) {
	s := New(Options{AllowRS256: true})
	defer s.Close()
	c, _, _ := jitClient(t, s, s.JITConfig("jit-1", nil))
	if c.alg != jwt.SigningMethodRS256 {
		t.Fatalf("JIT credentials still require FIPS")
	}
	c.authenticate()
	noRejections(t, s)
}

func TestLockExpiry(t *testing.T) {
	s := New(Options{LockDuration: 150 * time.Millisecond})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("jit-1", nil))
	c.authenticate()
	c.openSession(id, name)
	job := s.QueueJob(JobSpec{Steps: []Step{{Run: "true"}}})
	msg := acquire(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := job.Wait(ctx)
	if !errors.Is(err, ErrJobAbandoned) || !res.Expired {
		t.Fatalf("Wait = %v, %v", res, err)
	}
	jt := map[string]string{"Authorization": "Bearer " + msg.token}
	if r := do(t, "POST", s.RunServiceURL()+"renewjob", jt, map[string]string{"planId": job.PlanID(), "jobId": job.ID()}); r.status != 404 {
		t.Fatalf("renew after expiry: %d", r.status)
	}
	expectRejection(t, s, 0, "abandoned")
}

func TestCancelDeliveredOnBusyPoll(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("jit-1", nil))
	c.authenticate()
	c.openSession(id, name)
	job := s.QueueJob(JobSpec{Steps: []Step{{Run: "sleep 100"}}})
	acquire(t, c)
	s.Cancel(job)
	r := c.poll("Busy")
	var m brokerMessage
	r.json(t, &m)
	if m.MessageType != "JobCancellation" || m.Body != fmt.Sprintf(`{"jobId":%q,"timeout":"00:05:00"}`, job.ID()) {
		t.Fatalf("got %s", r.body)
	}
	noRejections(t, s)
}

// TestTLS: a TLS fake serves https under every URL it hands out, to a
// client that trusts CertificatePEM, and a client that does not is
// refused the handshake.
func TestTLS(t *testing.T) {
	s := New(Options{TLS: true})
	defer s.Close()
	if !strings.HasPrefix(s.APIURL(), "https://127.0.0.1:") || !strings.HasPrefix(s.BrokerURL(), "https://") {
		t.Fatalf("a TLS fake's URLs: %s, %s", s.APIURL(), s.BrokerURL())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertificatePEM()) {
		t.Fatalf("CertificatePEM holds no certificate: %q", s.CertificatePEM())
	}
	list := s.APIURL() + "/repos/o/r/actions/runners"
	req, _ := http.NewRequest(http.MethodGet, list, nil)
	req.Header.Set("Authorization", "RemoteAuth "+s.RegistrationToken("o/r"))
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := trusting.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", list, resp.Status)
	}
	var unknown *tls.CertificateVerificationError
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(list); !errors.As(err, &unknown) {
		t.Fatalf("a client that does not trust the fake's certificate got %v, want a verification error", err)
	}
	if plain := New(Options{}); plain.CertificatePEM() != nil || !strings.HasPrefix(plain.URL(), "http://") {
		t.Errorf("a plain fake serves %s with certificate %q", plain.URL(), plain.CertificatePEM())
	} else {
		plain.Close()
	}
}
