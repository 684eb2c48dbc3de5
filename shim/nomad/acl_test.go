package nomad

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
)

// aclNomad answers each "METHOD path" with a fixed status and body and
// keeps what was sent.
type aclNomad struct {
	mu      sync.Mutex
	answers map[string]struct {
		code int
		body string
	}
	got map[string]string // request bodies by "METHOD path"
}

func newACLNomad(t *testing.T, answers map[string]struct {
	code int
	body string
}) (*aclNomad, *Client) {
	f := &aclNomad{answers: answers, got: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(&api.Config{Address: srv.URL, Namespace: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	return f, &Client{API: c, Log: hclog.NewNullLogger()}
}

func (f *aclNomad) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	f.mu.Lock()
	f.got[key] = "namespace=" + r.URL.Query().Get("namespace") + " " + string(body)
	a, ok := f.answers[key]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "no such endpoint", http.StatusNotFound)
		return
	}
	w.WriteHeader(a.code)
	w.Write([]byte(a.body))
}

type answer = struct {
	code int
	body string
}

func TestACLEnabled(t *testing.T) {
	tests := []struct {
		name    string
		self    answer
		want    bool
		wantErr bool
	}{
		{"management token", answer{200, `{"AccessorID":"a","Type":"management"}`}, true, false},
		{"ACLs off", answer{400, "ACL support disabled"}, false, false},
		{"anonymous", answer{403, "Permission denied"}, true, false},
		{"unknown token", answer{403, "ACL token not found"}, true, false},
		{"server trouble", answer{500, "rpc error: no leader"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newACLNomad(t, map[string]answer{"GET /v1/acl/token/self": tt.self})
			got, err := c.ACLEnabled(context.Background())
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ACLEnabled = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A token that may not deregister (the shims' policy has no submit-job)
// stops the job by scaling its group to zero; any other refusal is an
// error that names the capabilities.
func TestCancelWithoutSubmitJob(t *testing.T) {
	const id = "solstice-solstice-test/dispatch-1-abc"
	tests := []struct {
		name      string
		answers   map[string]answer
		wantScale bool
		wantErr   string
	}{
		{"may deregister", map[string]answer{"DELETE /v1/job/" + id: {200, `{"EvalID":"e"}`}}, false, ""},
		{"may only scale", map[string]answer{
			"DELETE /v1/job/" + id:         {403, "Permission denied"},
			"PUT /v1/job/" + id + "/scale": {200, `{"EvalID":"e"}`},
		}, true, ""},
		{"may do neither", map[string]answer{
			"DELETE /v1/job/" + id:         {403, "Permission denied"},
			"PUT /v1/job/" + id + "/scale": {403, "Permission denied"},
		}, true, "submit-job or scale-job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newACLNomad(t, tt.answers)
			err := c.Cancel(context.Background(), &Job{ID: id})
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Cancel: %v, want error containing %q", err, tt.wantErr)
			}
			req, scaled := f.got["PUT /v1/job/"+id+"/scale"]
			if scaled != tt.wantScale {
				t.Errorf("scaled = %v, want %v", scaled, tt.wantScale)
			}
			for _, want := range []string{"namespace=ci ", `"Count":0`, `"Group":"job"`} {
				if scaled && !strings.Contains(req, want) {
					t.Errorf("the scale request %s lacks %s", req, want)
				}
			}
		})
	}
}

func TestApplyPoliciesNeedsManagement(t *testing.T) {
	_, c := newACLNomad(t, map[string]answer{"PUT /v1/acl/policy/solstice-a-ci": {403, "Permission denied"}})
	_, err := c.ApplyPolicies(context.Background(), Policies{Parent: `namespace "${namespace}" {}`, Shims: "x"}, "ci", []string{"solstice-a"})
	if err == nil || !strings.Contains(err.Error(), "management token") || !strings.Contains(err.Error(), "solstice-a-ci") {
		t.Fatalf("ApplyPolicies with a plain token: %v, want an error naming the policy and the management token", err)
	}
}

func TestExplainDenied(t *testing.T) {
	denied := []struct {
		name string
		body string
		code int
		want []string
	}{
		{"a policy without the capability", "Permission denied", 403, []string{"permission denied: needs X", "Permission denied"}},
		{"a workload identity where Nomad takes only ACL tokens", "ACL token is invalid", 500, []string{"permission denied: needs X", "not a workload identity"}},
		{"a lookup of a JWT as an ACL secret", "acl token lookup failed: index error: UUID must be 36 characters", 500, []string{"not a workload identity"}},
		{"something else", "no leader", 500, []string{"no leader"}},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newACLNomad(t, map[string]answer{"GET /v1/acl/token/self": {tt.code, tt.body}})
			_, _, err := c.API.ACLTokens().Self(nil)
			got := explainDenied(err, "needs X").Error()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("explainDenied: %q lacks %q", got, w)
				}
			}
			if tt.name == "something else" && strings.Contains(got, "permission denied") {
				t.Errorf("explainDenied called %q a refusal", got)
			}
		})
	}
}
