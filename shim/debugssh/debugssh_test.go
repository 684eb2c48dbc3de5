package debugssh

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const aliceKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3k5DTGmXc0f0Yk3c8s8kqG3tJb0x6jvI1i0JwL0XyZ alice@laptop"

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		run    Run
		want   error
		reason string
	}{
		{"opted in", Policy{}, Run{OptIn: true, User: "alice"}, nil, ""},
		{"not asked", Policy{}, Run{User: "alice"}, ErrNotAsked, ""},
		{"operator off", Policy{Disabled: true}, Run{OptIn: true, User: "alice"}, ErrNoSession, "turned debug sessions off"},
		{"fork", Policy{}, Run{OptIn: true, User: "mallory", FromFork: true}, ErrNoSession, "fork"},
		{"fork allowed", Policy{AllowForks: true}, Run{OptIn: true, User: "mallory", FromFork: true}, nil, ""},
		{"no user", Policy{}, Run{OptIn: true}, ErrNoSession, "who triggered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.run)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("reason %q lacks %q", err, tt.reason)
			}
		})
	}
}

func TestOptedIn(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "TRUE": true, " true ": true, "1": false, "yes": false, "": false} {
		if got := OptedIn(map[string]string{OptInVar: v}); got != want {
			t.Errorf("OptedIn(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestWebKeys(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/octocat.keys" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("# Gitea isn't a key server.\n" + aliceKey + "\n\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ\n"))
	}))
	defer srv.Close()
	keys, err := WebKeys(context.Background(), srv.Client(), srv.URL+"/", "octocat")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != aliceKey {
		t.Fatalf("keys %q", keys)
	}
}

func TestRunOf(t *testing.T) {
	pr := func(head string) map[string]any {
		return map[string]any{"repository": "alice/app", "actor": "bob", "event": map[string]any{
			"pull_request": map[string]any{"head": map[string]any{"repo": map[string]any{"full_name": head}}}}}
	}
	tests := []struct {
		name string
		gh   map[string]any
		want Run
	}{
		{"push", map[string]any{"repository": "alice/app", "actor": "alice"}, Run{OptIn: true, User: "alice"}},
		{"re-run", map[string]any{"actor": "alice", "triggering_actor": "carol"}, Run{OptIn: true, User: "carol"}},
		{"same-repo PR", pr("alice/app"), Run{OptIn: true, User: "bob"}},
		{"fork PR", pr("mallory/app"), Run{OptIn: true, User: "bob", FromFork: true}},
	}
	for _, tt := range tests {
		if got := RunOf(tt.gh, true); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestFileKeys(t *testing.T) {
	const bobKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
		err   string
	}{
		{"none", map[string]string{"id_ed25519": "PRIVATE"}, nil, ""},
		{"one per file, private keys and comments left out", map[string]string{
			"id_ed25519.pub": aliceKey + "\n", "id_rsa.pub": "# old\n\n" + bobKey, "id_ed25519": "PRIVATE", "known_hosts": "h ssh-ed25519 AAAA",
		}, []string{aliceKey, bobKey}, ""},
		{"oversized", map[string]string{"huge.pub": strings.Repeat("x", maxKeysBody+1)}, nil, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FileKeys(dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("FileKeys = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
