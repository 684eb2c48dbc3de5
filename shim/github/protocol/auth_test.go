package protocol

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testCreds(t *testing.T, authURL string, fips bool) *Credentials {
	return &Credentials{RunnerID: 7, RunnerName: "vm1", ClientID: "client-1", AuthorizationURL: authURL,
		RequireFIPS: fips, PrivateKeyPEM: encodePrivateKey(key(t))}
}

// tokenServer checks the assertion and hands out tokens tok-1, tok-2, ...
func tokenServer(t *testing.T, wantAlg string, n *atomic.Int32) *recorder {
	var srv *recorder
	srv = newRecorder(t, func(w http.ResponseWriter, r recorded) {
		form, _ := url.ParseQuery(string(r.Body))
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			form.Get("grant_type") != "client_credentials" ||
			form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			t.Errorf("token request %s %v %v", r.Method, r.Header, form)
		}
		verifyAssertion(t, form.Get("client_assertion"), wantAlg, srv.URL+"/token")
		i := n.Add(1)
		writeJSON(w, 200, map[string]any{"access_token": "tok-" + string(rune('0'+i)), "token_type": "Bearer", "expires_in": 3600})
	})
	return srv
}

func verifyAssertion(t *testing.T, s, alg, aud string) {
	t.Helper()
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(s, claims, func(*jwt.Token) (any, error) { return &key(t).PublicKey, nil },
		jwt.WithValidMethods([]string{alg}), jwt.WithLeeway(2*time.Hour), jwt.WithAudience(aud), jwt.WithIssuer("client-1"), jwt.WithSubject("client-1"))
	if err != nil || !tok.Valid {
		t.Fatalf("assertion: %v", err)
	}
	if _, ok := claims["aud"].(string); !ok {
		t.Errorf("aud should be a single string: %v", claims["aud"])
	}
	if jti, _ := claims["jti"].(string); len(jti) != 36 {
		t.Errorf("jti %q is not a GUID", jti)
	}
	exp, _ := claims.GetExpirationTime()
	nbf, _ := claims.GetNotBefore()
	iat, _ := claims.GetIssuedAt()
	if exp.Sub(iat.Time) != 5*time.Minute+30*time.Second || !nbf.Equal(iat.Time) ||
		time.Since(iat.Time) > 2*time.Hour {
		t.Errorf("times exp %v nbf %v iat %v", exp, nbf, iat)
	}
}

func TestTokenSource(t *testing.T) {
	for _, tc := range []struct {
		fips bool
		alg  string
	}{{true, "PS256"}, {false, "RS256"}} {
		t.Run(tc.alg, func(t *testing.T) {
			var n atomic.Int32
			srv := tokenServer(t, tc.alg, &n)
			ts := NewTokenSource(testCreds(t, srv.URL+"/token", tc.fips), srv.Client())
			ctx := context.Background()
			a, err := ts.Token(ctx)
			b, _ := ts.Token(ctx)
			if err != nil || a != "tok-1" || b != "tok-1" || n.Load() != 1 {
				t.Fatalf("cached token: %q %q %v (%d fetches)", a, b, err, n.Load())
			}
			ts.Invalidate()
			if c, _ := ts.Token(ctx); c != "tok-2" {
				t.Fatalf("after Invalidate: %q", c)
			}
			ts.now = func() time.Time { return time.Now().Add(59*time.Minute + 30*time.Second) }
			if d, _ := ts.Token(ctx); d != "tok-3" {
				t.Errorf("near expiry the token should be refreshed, got %q", d)
			}
		})
	}
}

func TestTokenSourceError(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		writeJSON(w, 400, map[string]string{"error": "invalid_client", "error_description": "bad"})
	})
	ts := NewTokenSource(testCreds(t, srv.URL, true), nil)
	if _, err := ts.Token(context.Background()); err == nil {
		t.Fatal("want error")
	}
}
