package forgejo

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Task states as /metrics counts them.
const (
	statePreparing = "preparing"
	stateQueued    = "queued"
	stateBooting   = "booting"
	stateRunning   = "running"
	stateReporting = "reporting"
)

// Metrics are the runner's Prometheus metrics and health. The exposition
// format is written by hand: a handful of series does not justify a
// client library.
type Metrics struct {
	mu        sync.Mutex
	states    map[int64]string
	results   map[string]int64
	apiErrors map[string]int64
	apiCalls  map[string]int64
	lag       map[int64]int
	dispatch  histogram
	firstStep histogram
	forge     health
	nomad     health
	now       func() time.Time
}

type health struct {
	err   string // empty when the last call succeeded
	since time.Time
}

// latencyBuckets are seconds, from a quick dispatch to a long queue.
var latencyBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

type histogram struct {
	counts []int64 // per bucket, not cumulative
	sum    float64
	n      int64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]int64, len(latencyBuckets))
	}
	for i, b := range latencyBuckets {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += v
	h.n++
}

// NewMetrics returns empty metrics; forge and Nomad count as healthy until
// a call fails.
func NewMetrics() *Metrics {
	return &Metrics{
		states: map[int64]string{}, results: map[string]int64{},
		apiErrors: map[string]int64{}, apiCalls: map[string]int64{}, lag: map[int64]int{},
		now: time.Now,
	}
}

func (m *Metrics) taskState(id int64, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if state == "" {
		delete(m.states, id)
		delete(m.lag, id)
		return
	}
	m.states[id] = state
}

func (m *Metrics) taskResult(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results[result]++
}

func (m *Metrics) dispatched(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dispatch.observe(d.Seconds())
}

func (m *Metrics) firstStepStarted(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.firstStep.observe(d.Seconds())
}

func (m *Metrics) logLag(id int64, rows int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.states[id]; ok {
		m.lag[id] = rows
	}
}

// forgeCall records the outcome of a forge RPC. Errors about one task (a
// closed log, a task the forge gave away) say nothing about the forge's
// health.
func (m *Metrics) forgeCall(method string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.apiCalls[method]++
	if err != nil {
		m.apiErrors[method]++
	}
	if errors.Is(err, ErrLogClosed) || errors.Is(err, ErrTaskGone) {
		return
	}
	m.forge.set(err, m.now())
}

func (m *Metrics) nomadCall(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nomad.set(err, m.now())
}

func (h *health) set(err error, now time.Time) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != h.err || h.since.IsZero() {
		h.since = now
	}
	h.err = msg
}

// Healthy reports whether the forge and Nomad answered their last calls,
// and if not, why.
func (m *Metrics) Healthy() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var why []string
	if m.forge.err != "" {
		why = append(why, fmt.Sprintf("forge unreachable since %s: %s", m.forge.since.UTC().Format(time.RFC3339), m.forge.err))
	}
	if m.nomad.err != "" {
		why = append(why, fmt.Sprintf("nomad unreachable since %s: %s", m.nomad.since.UTC().Format(time.RFC3339), m.nomad.err))
	}
	return len(why) == 0, strings.Join(why, "\n")
}

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.WriteTo(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := m.Healthy()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// WriteTo writes the metrics in Prometheus' text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	m.writeTasks(&b)
	writeCounter(&b, "solstice_forgejo_tasks_finished_total", "Tasks reported to the forge as finished, by result.", "result", m.results)
	writeCounter(&b, "solstice_forgejo_api_calls_total", "Runner protocol calls to the forge, by method.", "method", m.apiCalls)
	writeCounter(&b, "solstice_forgejo_api_errors_total", "Runner protocol calls to the forge that failed, by method.", "method", m.apiErrors)
	writeHistogram(&b, "solstice_forgejo_dispatch_latency_seconds", "Time from fetching a task to its Nomad dispatch.", &m.dispatch)
	writeHistogram(&b, "solstice_forgejo_first_step_latency_seconds", "Time from fetching a task to its first step starting in the VM.", &m.firstStep)
	lag := 0
	for _, n := range m.lag {
		lag += n
	}
	fmt.Fprintf(&b, "# HELP solstice_forgejo_log_lag_rows Log rows rendered but not yet stored by the forge.\n# TYPE solstice_forgejo_log_lag_rows gauge\nsolstice_forgejo_log_lag_rows %d\n", lag)
	fmt.Fprintf(&b, "# HELP solstice_forgejo_up Whether the forge and Nomad answered their last call.\n# TYPE solstice_forgejo_up gauge\n")
	fmt.Fprintf(&b, "solstice_forgejo_up{dependency=\"forge\"} %d\nsolstice_forgejo_up{dependency=\"nomad\"} %d\n", up(m.forge), up(m.nomad))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func up(h health) int {
	if h.err == "" {
		return 1
	}
	return 0
}

func (m *Metrics) writeTasks(b *strings.Builder) {
	counts := map[string]int64{}
	for _, s := range []string{statePreparing, stateQueued, stateBooting, stateRunning, stateReporting} {
		counts[s] = 0
	}
	for _, s := range m.states {
		counts[s]++
	}
	fmt.Fprintf(b, "# HELP solstice_forgejo_tasks Tasks in flight, by state.\n# TYPE solstice_forgejo_tasks gauge\n")
	for _, k := range sortedKeys(counts) {
		fmt.Fprintf(b, "solstice_forgejo_tasks{state=%q} %d\n", k, counts[k])
	}
}

func writeCounter(b *strings.Builder, name, help, label string, values map[string]int64) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	for _, k := range sortedKeys(values) {
		fmt.Fprintf(b, "%s{%s=%q} %d\n", name, label, k, values[k])
	}
}

func writeHistogram(b *strings.Builder, name, help string, h *histogram) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum int64
	for i, le := range latencyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(b, "%s_bucket{le=\"%g\"} %d\n", name, le, cum)
	}
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
