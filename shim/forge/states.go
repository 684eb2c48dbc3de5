package forge

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// StateGauge counts a shim's jobs by state, as name{state="…"}. It
// remembers each job's state, so setting one twice counts it once.
type StateGauge[ID comparable] struct {
	mu  sync.Mutex
	of  map[ID]string
	vec *prometheus.GaugeVec
}

// NewStateGauge shows each of states at 0 until a job is in it, so a
// dashboard never sees a state vanish.
func NewStateGauge[ID comparable](opts prometheus.GaugeOpts, states ...string) *StateGauge[ID] {
	g := &StateGauge[ID]{of: map[ID]string{}, vec: prometheus.NewGaugeVec(opts, []string{"state"})}
	for _, s := range states {
		g.vec.WithLabelValues(s)
	}
	return g
}

// Set moves job id to state; "" forgets the job.
func (g *StateGauge[ID]) Set(id ID, state string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.of[id]; ok {
		g.vec.WithLabelValues(old).Dec()
	}
	if state == "" {
		delete(g.of, id)
		return
	}
	g.of[id] = state
	g.vec.WithLabelValues(state).Inc()
}

// Has reports whether job id is in some state.
func (g *StateGauge[ID]) Has(id ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.of[id]
	return ok
}

// Describe is prometheus.Collector's.
func (g *StateGauge[ID]) Describe(ch chan<- *prometheus.Desc) { g.vec.Describe(ch) }

// Collect is prometheus.Collector's.
func (g *StateGauge[ID]) Collect(ch chan<- prometheus.Metric) { g.vec.Collect(ch) }
