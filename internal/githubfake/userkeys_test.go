package githubfake

import (
	"context"
	"net/http"
	"testing"

	"github.com/solstice-ci/solstice/shim/debugssh"
)

func TestUserKeys(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3k5DTGmXc0f0Yk3c8s8kqG3tJb0x6jvI1i0JwL0XyZ"
	s.SetUserKeys("Octocat", key+" octo@laptop")
	s.SetUserKeys("keyless")
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/octocat.keys", 200, key + "\n"},
		{"GET", "/OctoCat.keys", 200, key + "\n"},
		{"GET", "/keyless.keys", 200, ""},
		{"GET", "/ghost.keys", 404, ""},
		{"POST", "/octocat.keys", 405, ""},
		{"GET", "/-bad-.keys", 404, ""},
	}
	for _, tt := range tests {
		r := do(t, tt.method, s.URL()+tt.path, nil, nil)
		if r.status != tt.status || (tt.status == 200 && string(r.body) != tt.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, r.status, r.body, tt.status, tt.body)
		}
	}
	if n := len(s.Rejections()); n != 3 {
		t.Errorf("%d rejections recorded, want 3 (ghost, POST, bad login): %+v", n, s.Rejections())
	}
	// The shim's client reads the listing as the real one.
	keys, err := debugssh.WebKeys(context.Background(), http.DefaultClient, s.GitHubURL(""), "octocat")
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("GitHubKeys = %q, %v", keys, err)
	}
}
