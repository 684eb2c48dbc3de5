package forge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dependency is a service a shim cannot work without.
type Dependency string

// The services every shim depends on.
const (
	Forge Dependency = "forge"
	Nomad Dependency = "nomad"
)

// Health is whether each dependency answered the shim's last call to it,
// and since when. A shim reports every call's outcome; /healthz and the
// up gauges read it.
type Health struct {
	mu   sync.Mutex
	deps []*state // in the order given to NewHealth, for a stable body
	now  func() time.Time
}

type state struct {
	dep   Dependency
	err   error // nil while the last call succeeded
	since time.Time
}

// NewHealth tracks deps, each healthy until a call to it fails.
func NewHealth(deps ...Dependency) *Health {
	h := &Health{now: time.Now}
	for _, d := range deps {
		h.deps = append(h.deps, &state{dep: d, since: h.now()})
	}
	return h
}

// Report records the outcome of a call to dep. The time only moves when
// dep turns healthy or unhealthy: an outage that keeps failing with other
// errors is still one outage.
func (h *Health) Report(dep Dependency, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(dep)
	if (s.err == nil) != (err == nil) {
		s.since = h.now()
	}
	s.err = err
}

// state is dep's state, tracked from its first report if NewHealth was
// not given it.
func (h *Health) state(dep Dependency) *state {
	for _, s := range h.deps {
		if s.dep == dep {
			return s
		}
	}
	s := &state{dep: dep, since: h.now()}
	h.deps = append(h.deps, s)
	return s
}

// Up reports whether every one of deps (all when none are given) answered
// its last call.
func (h *Health) Up(deps ...Dependency) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.deps {
		if s.err != nil && (len(deps) == 0 || slices.Contains(deps, s.dep)) {
			return false
		}
	}
	return true
}

// Healthy reports whether every dependency answered its last call, and if
// not, why: a line per dependency that did not, saying since when.
func (h *Health) Healthy() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var why []string
	for _, s := range h.deps {
		if s.err != nil {
			why = append(why, fmt.Sprintf("%s unreachable since %s: %v", s.dep, s.since.UTC().Format(time.RFC3339), s.err))
		}
	}
	return len(why) == 0, strings.Join(why, "\n")
}

// ServeHTTP answers /healthz: 200 "ok", or 503 "unhealthy" and why, which
// is what a Consul or Nomad check shows as its output.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	ok, why := h.Healthy()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy\n%s\n", why)
		return
	}
	fmt.Fprintln(w, "ok")
}

// UpGauge is a gauge that is 1 while all of deps (every dependency when
// none are given) answered their last call, and 0 otherwise.
func (h *Health) UpGauge(opts prometheus.GaugeOpts, deps ...Dependency) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(opts, func() float64 {
		if h.Up(deps...) {
			return 1
		}
		return 0
	})
}
