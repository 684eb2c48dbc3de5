package nomad

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Secrets whose job Nomad no longer has are removed; those of a job that
// exists (running or dead: a shim still owes it a result) and those too
// young (a dispatch in progress) stay.
func TestSweepSecrets(t *testing.T) {
	f, c := newFakeNomad(t)
	f.addJob(child("solstice-solstice-test/dispatch-1", "forgejo", "https://forge#r", "k1", "running"))
	f.addJob(child("solstice-solstice-test/dispatch-2", "github", "https://github.com/o", "k2", "dead"))
	for _, k := range []string{"k1", "k2", "gone", "young"} {
		f.setVar(contract.SecretsPrefix+k, true)
	}
	f.varTimes[contract.SecretsPrefix+"young"] = time.Now().UnixNano()
	// Through Observed, as the shims hold it.
	var jobs Jobs = Observed{Jobs: c, Report: func(error) {}}
	n, err := jobs.(Sweeper).SweepSecrets(context.Background(), SweepAge)
	if err != nil {
		t.Fatal(err)
	}
	left := slices.Sorted(maps.Keys(f.vars))
	want := []string{contract.SecretsPrefix + "k1", contract.SecretsPrefix + "k2", contract.SecretsPrefix + "young"}
	if n != 1 || !slices.Equal(left, want) {
		t.Fatalf("removed %d, left %v, want %v", n, left, want)
	}
}
