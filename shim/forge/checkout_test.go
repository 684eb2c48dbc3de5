package forge

import (
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestCheckout(t *testing.T) {
	tests := []struct {
		name   string
		github map[string]any
		want   *contract.Checkout
	}{
		{"github", map[string]any{"server_url": "https://github.com", "repository": "o/r", "sha": "abc", "ref": "refs/heads/main"},
			&contract.Checkout{URL: "https://github.com/o/r.git", SHA: "abc", Ref: "refs/heads/main"}},
		{"a forge under a path", map[string]any{"server_url": "https://git.example/forgejo/", "repository": "o/r"},
			&contract.Checkout{URL: "https://git.example/forgejo/o/r.git"}},
		{"no server", map[string]any{"repository": "o/r"}, nil},
		{"no repository", map[string]any{"server_url": "https://github.com"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Checkout(tt.github)
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("Checkout = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	for v, want := range map[any]string{"x": "x", 12345678901.0: "12345678901", 1.5: "1.5", nil: "", true: "true"} {
		if got := Text(v); got != want {
			t.Errorf("Text(%#v) = %q, want %q", v, got, want)
		}
	}
}
