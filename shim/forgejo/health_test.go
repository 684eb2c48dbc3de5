package forgejo

import (
	"strings"
	"testing"
	"time"
)

// TestHealthFollowsOutages: /healthz turns unhealthy while the forge or
// Nomad is down and healthy again after, even when nothing else would call
// the one that is down: the catalog is cached for an hour here, so only the
// Nomad probe reads Nomad while the runner idles, and a forge that is down
// at startup is seen through the connect calls alone.
func TestHealthFollowsOutages(t *testing.T) {
	tests := []struct {
		name      string
		atStartup bool
		down      func(e *env, down bool)
		why       string
	}{
		{"nomad down while idle", false, func(e *env, d bool) { e.nomad.setDown(d) }, "nomad unreachable"},
		{"forge down while idle", false, func(e *env, d bool) { e.forge.setDown(d) }, "forge unreachable"},
		{"forge down at startup", true, func(e *env, d bool) { e.forge.setDown(d) }, "forge unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.atStartup {
				tt.down(e, true)
			}
			r := e.start(func(c *Config) {
				c.Timing.CatalogTTL = time.Hour
				c.Timing.Probe = 20 * time.Millisecond
			})
			if !tt.atStartup {
				waitFor(t, 5*time.Second, "polling", func() bool { return e.forge.count("FetchTask") > 2 })
				if ok, why := r.rt.Metrics().Healthy(); !ok {
					t.Fatalf("unhealthy before the outage: %s", why)
				}
				tt.down(e, true)
			}
			waitFor(t, 5*time.Second, tt.why, func() bool {
				ok, why := r.rt.Metrics().Healthy()
				return !ok && strings.Contains(why, tt.why)
			})
			tt.down(e, false)
			waitFor(t, 5*time.Second, "healthy again", func() bool {
				ok, _ := r.rt.Metrics().Healthy()
				return ok
			})
		})
	}
}
