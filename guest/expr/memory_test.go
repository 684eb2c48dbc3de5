package expr

import (
	"runtime"
	"strings"
	"testing"
)

// TestMemoryBudgetWhileBuilding checks that functions building text stop
// at the 1 MB budget instead of building the whole text first: each of
// these short inputs used to allocate gigabytes before being refused.
func TestMemoryBudgetWhileBuilding(t *testing.T) {
	doubled := func(s string, times int) string {
		for range times {
			s = "format('{0}{0}', " + s + ")"
		}
		return s
	}
	big := doubled("'x'", 16) // 64 Ki characters
	env := &Env{Contexts: map[string]Value{"github": map[string]any{"big": strings.Repeat("y", 1<<20)}}}
	tests := []struct{ name, src, want string }{
		{"format repeating a large argument", "format('" + strings.Repeat("{0}", 6000) + "', " + big + ")", "format(): the maximum allowed memory size"},
		{"toJSON indenting a deeply nested array", "toJSON(fromJSON(format('{0}1{1}', " + doubled("'['", 16) + ", " + doubled("']'", 16) + ")))", "toJSON(): the maximum allowed memory size"},
		{"join with a large separator", "join(fromJSON('[" + strings.Repeat("1,", 5000) + "1]'), " + big + ")", "join(): the maximum allowed memory size"},
		{"template repeating a large value", strings.Repeat("${{ github.big }}", 3000), "expr: the maximum allowed memory size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var err error
			if strings.HasPrefix(tt.src, openExpr) {
				_, err = Interpolate(tt.src, env)
			} else {
				_, err = Evaluate(tt.src, env)
			}
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %.200v, want %q", err, tt.want)
			}
			if mib := (after.TotalAlloc - before.TotalAlloc) >> 20; mib > 64 {
				t.Errorf("allocated %d MiB before refusing", mib)
			}
		})
	}
}
