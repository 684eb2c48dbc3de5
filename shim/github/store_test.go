package github

import (
	"errors"
	"fmt"
	"testing"

	"github.com/solstice-ci/solstice/shim/github/protocol"
)

func TestStoreScopes(t *testing.T) {
	org, err := ScopeOf("https://github.com/octo")
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{Scope: org}
	tests := []struct {
		path string
		want string
		ok   bool
	}{
		{"solstice/runners/github/github-com/octo/omnios-1", "omnios-1", true},
		{"solstice/runners/github/github-com/octo/app/omnios-1", "", false}, // the repository's runner
		{"solstice/runners/github/github-com/octo/", "", false},
	}
	for _, tt := range tests {
		got, ok := s.inScope(tt.path, runnersPrefix)
		if got != tt.want && tt.ok || ok != tt.ok {
			t.Errorf("inScope(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	for _, bad := range []string{"github.com/octo", "ftp://github.com/octo", ""} {
		if _, err := ScopeOf(bad); err == nil {
			t.Errorf("ScopeOf(%q) accepted", bad)
		}
	}
	if ghes, _ := ScopeOf("https://ghes.example.org:8443/octo/app"); ghes != "ghes-example-org_8443/octo/app" {
		t.Errorf("GHES scope = %q", ghes)
	}
}

func TestPermanent(t *testing.T) {
	for status, want := range map[int]bool{400: true, 403: true, 409: true, 422: true, 401: false, 404: false, 429: false, 500: false, 503: false} {
		err := fmt.Errorf("upload: %w", &protocol.HTTPError{StatusCode: status})
		if got := permanent(err); got != want {
			t.Errorf("permanent(HTTP %d) = %v, want %v", status, got, want)
		}
	}
	if permanent(errors.New("connection refused")) {
		t.Error("a network error is not permanent")
	}
}
