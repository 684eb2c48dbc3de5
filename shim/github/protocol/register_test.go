package protocol

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
)

func TestAPIURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/owner/repo", "https://api.github.com"},
		{"https://github.com/org", "https://api.github.com"},
		{"https://www.github.com/org", "https://api.github.com"},
		{"https://acme.ghe.com/org", "https://api.acme.ghe.com"},
		{"https://ghes.example.com/owner/repo", "https://ghes.example.com/api/v3"},
		{"http://127.0.0.1:8080/o", "http://127.0.0.1:8080/api/v3"},
	} {
		got, err := APIURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("APIURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := APIURL("not a url"); err == nil {
		t.Error("APIURL accepted garbage")
	}
}

func TestEntityURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/owner/repo", "https://api.github.com/repos/owner/repo/actions"},
		{"https://github.com/org", "https://api.github.com/orgs/org/actions"},
		{"https://github.com/enterprises/ent", "https://api.github.com/enterprises/ent/actions"},
		{"https://ghes.example.com/owner/repo", "https://ghes.example.com/api/v3/repos/owner/repo/actions"},
	} {
		got, err := entityURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("entityURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := entityURL("https://github.com/a/b/c"); err == nil {
		t.Error("entityURL accepted a three-segment path")
	}
}

type fakeAdmin struct {
	useV2    bool
	existing bool
}

func (f fakeAdmin) route(w http.ResponseWriter, r recorded) {
	switch {
	case r.Method == "POST" && r.Path == "/api/v3/actions/runner-registration":
		writeJSON(w, 200, map[string]any{"url": "https://pipelines.example/abc", "token_schema": "OAuthAccessToken", "token": "tenant", "use_v2_flow": f.useV2})
	case r.Method == "GET" && r.Path == "/api/v3/repos/o/r/actions/runner-groups":
		writeJSON(w, 200, map[string]any{"total_count": 2, "runner_groups": []any{
			map[string]any{"id": 9, "name": "hosted", "default": false, "is_hosted": true},
			map[string]any{"id": 1, "name": "Default", "default": true, "is_hosted": false},
		}})
	case r.Method == "GET" && r.Path == "/api/v3/repos/o/r/actions/runners":
		runners := []any{}
		if f.existing {
			runners = append(runners, map[string]any{"id": 77, "name": "vm1"})
		}
		writeJSON(w, 200, map[string]any{"total_count": len(runners), "runners": runners})
	case r.Method == "POST" && r.Path == "/api/v3/actions/runners/register":
		writeJSON(w, 201, map[string]any{"id": 42, "name": "vm1", "authorization": map[string]any{
			"authorization_url": "https://auth.example/token", "server_url": "https://broker.example/", "client_id": "c1d2"}})
	case r.Method == "DELETE" && r.Path == "/api/v3/repos/o/r/actions/runners/42":
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

func TestRegister(t *testing.T) {
	srv := newRecorder(t, fakeAdmin{useV2: true}.route)
	o := RegisterOptions{URL: srv.URL + "/o/r", Token: "regtok", Name: "vm1", Labels: []string{"solstice"},
		RunnerVersion: "2.999.0", UserAgent: "ua/1", HTTPClient: srv.Client()}
	c, err := Register(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if c.RunnerID != 42 || c.ServerURLV2 != "https://broker.example/" || c.ClientID != "c1d2" ||
		c.AuthorizationURL != "https://auth.example/token" || !c.RequireFIPS || c.GitHubURL != o.URL {
		t.Errorf("credentials: %+v", c)
	}
	k, err := c.PrivateKey()
	if err != nil || k.N.BitLen() != 2048 {
		t.Fatalf("private key: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 4 {
		t.Fatalf("want 4 requests, got %d", len(reqs))
	}
	for _, r := range reqs {
		if r.Header.Get("Authorization") != "RemoteAuth regtok" || r.Header.Get("User-Agent") != "ua/1" {
			t.Errorf("%s %s: headers %v", r.Method, r.Path, r.Header)
		}
	}
	if m := reqs[0].json(t); m["url"] != o.URL || m["runner_event"] != "register" {
		t.Errorf("runner-registration body %v", m)
	}
	if reqs[2].RawQuery != "name=vm1" {
		t.Errorf("runners lookup query %q", reqs[2].RawQuery)
	}
	checkRegisterBody(t, reqs[3].json(t), k.N)
}

func checkRegisterBody(t *testing.T, m map[string]any, n *big.Int) {
	t.Helper()
	if m["group_id"] != float64(1) || m["name"] != "vm1" || m["version"] != "2.999.0" ||
		m["updates_disabled"] != false || m["ephemeral"] != false {
		t.Errorf("register body %v", m)
	}
	if _, ok := m["replace"]; ok {
		t.Error("replace sent without Replace")
	}
	labels, _ := m["labels"].([]any)
	want := []string{"self-hosted/system", "illumos/system", "X64/system", "solstice/user"}
	if len(labels) != len(want) {
		t.Fatalf("labels %v", labels)
	}
	for i, l := range labels {
		lm := l.(map[string]any)
		if got := lm["name"].(string) + "/" + lm["type"].(string); got != want[i] {
			t.Errorf("label %d = %s, want %s", i, got, want[i])
		}
	}
	var kv struct {
		XMLName  xml.Name `xml:"RSAKeyValue"`
		Modulus  string
		Exponent string
	}
	if err := xml.Unmarshal([]byte(m["public_key"].(string)), &kv); err != nil {
		t.Fatal(err)
	}
	mod, _ := base64.StdEncoding.DecodeString(kv.Modulus)
	if new(big.Int).SetBytes(mod).Cmp(n) != 0 || kv.Exponent != "AQAB" {
		t.Errorf("public key XML does not match the stored private key: %s", m["public_key"])
	}
}

func TestRegisterErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		admin   fakeAdmin
		replace bool
		want    error
	}{
		{"legacy flow", fakeAdmin{useV2: false}, false, ErrLegacyFlow},
		{"exists", fakeAdmin{useV2: true, existing: true}, false, ErrRunnerExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRecorder(t, tc.admin.route)
			_, err := Register(context.Background(), RegisterOptions{URL: srv.URL + "/o/r", Token: "x", Name: "vm1", Replace: tc.replace})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRegisterReplace(t *testing.T) {
	srv := newRecorder(t, fakeAdmin{useV2: true, existing: true}.route)
	if _, err := Register(context.Background(), RegisterOptions{URL: srv.URL + "/o/r", Token: "x", Name: "vm1", Replace: true}); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	m := reqs[len(reqs)-1].json(t)
	if m["runner_id"] != float64(77) || m["replace"] != true {
		t.Errorf("replace body %v", m)
	}
}

func TestRemove(t *testing.T) {
	srv := newRecorder(t, fakeAdmin{}.route)
	c := &Credentials{RunnerID: 42, GitHubURL: srv.URL + "/o/r"}
	if err := Remove(context.Background(), RegisterOptions{Token: "rmtok"}, c); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()[0]
	if r.Method != "DELETE" || r.Header.Get("Authorization") != "RemoteAuth rmtok" {
		t.Errorf("remove request %s %s %v", r.Method, r.Path, r.Header)
	}
	c.RunnerID = 43
	var he *HTTPError
	if err := Remove(context.Background(), RegisterOptions{Token: "rmtok"}, c); !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("want *HTTPError 404, got %v", err)
	}
	if !strings.Contains(he.Error(), "remove runner") {
		t.Errorf("error lacks operation: %v", he)
	}
}
