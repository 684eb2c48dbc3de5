package forge

import (
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestConclusions(t *testing.T) {
	cs := Conclusions[string]{Success: "S", Failure: "F", Cancelled: "C", Skipped: "K"}
	for c, want := range map[string]string{contract.Success: "S", contract.Failure: "F", contract.Cancelled: "C", contract.Skipped: "K", "": "F", "neutral": "F"} {
		if got := cs.Of(c); got != want {
			t.Errorf("Of(%q) = %q, want %q", c, got, want)
		}
	}
}
