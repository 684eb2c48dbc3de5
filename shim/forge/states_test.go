package forge

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStateGauge: a job counts once in its latest state, and not at all
// once forgotten; declared states show at 0.
func TestStateGauge(t *testing.T) {
	g := NewStateGauge[int](prometheus.GaugeOpts{Name: "jobs", Help: "Jobs."}, "queued", "running")
	g.Set(1, "queued")
	g.Set(1, "queued")
	g.Set(2, "queued")
	g.Set(2, "running")
	g.Set(3, "booting")
	g.Set(3, "")
	want := map[string]float64{"queued": 1, "running": 1, "booting": 0}
	if got := gather(t, g); !maps.Equal(got, want) {
		t.Errorf("jobs by state %v, want %v", got, want)
	}
	if !g.Has(2) || g.Has(3) {
		t.Errorf("Has(2) = %v, Has(3) = %v", g.Has(2), g.Has(3))
	}
}

// gather is the gauge's value by state.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}
