package github

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Job states the metrics count.
const (
	stateRunning = "running"
)

// Metrics counts what the shim does, for /metrics, and knows whether
// GitHub and Nomad answered their last call, for /healthz.
type Metrics struct {
	mu       sync.Mutex
	jobs     map[string]string // GitHub job id -> state
	counters map[string]float64
	githubOK bool
	nomadOK  bool
	githubAt time.Time
	problem  string
}

// NewMetrics returns empty metrics; both services count as up until a
// call fails.
func NewMetrics() *Metrics {
	return &Metrics{jobs: map[string]string{}, counters: map[string]float64{}, githubOK: true, nomadOK: true}
}

func (m *Metrics) add(name string, v float64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.counters[name] += v
	m.mu.Unlock()
}

func (m *Metrics) jobState(id, state string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if state == "" {
		delete(m.jobs, id)
	} else {
		m.jobs[id] = state
	}
}

func (m *Metrics) finished(conclusion string) {
	m.add(fmt.Sprintf(`solstice_github_jobs_finished_total{conclusion=%q}`, conclusion), 1)
}

func (m *Metrics) dispatched(d time.Duration) {
	m.add("solstice_github_dispatch_latency_seconds_sum", d.Seconds())
	m.add("solstice_github_dispatch_latency_seconds_count", 1)
}

func (m *Metrics) brokerError(kind string) {
	m.add(fmt.Sprintf(`solstice_github_broker_errors_total{kind=%q}`, kind), 1)
}

func (m *Metrics) message(typ string) {
	m.add(fmt.Sprintf(`solstice_github_messages_total{type=%q}`, typ), 1)
}

func (m *Metrics) sessionConflict() { m.add("solstice_github_session_conflicts_total", 1) }
func (m *Metrics) lockLost()        { m.add("solstice_github_locks_lost_total", 1) }

func (m *Metrics) renewal(err error) {
	m.add(fmt.Sprintf(`solstice_github_renewals_total{result=%q}`, result(err)), 1)
}

func (m *Metrics) apiCall(call string, err error) {
	m.add(fmt.Sprintf(`solstice_github_api_calls_total{call=%q,result=%q}`, call, result(err)), 1)
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// githubCall records whether the broker answered a poll.
func (m *Metrics) githubCall(err error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.githubOK, m.githubAt = err == nil, time.Now()
	if err != nil {
		m.problem = err.Error()
	}
}

func (m *Metrics) nomadCall(err error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nomadOK = err == nil
	if err != nil {
		m.problem = err.Error()
	}
}

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", m.serveMetrics)
	mux.HandleFunc("/healthz", m.serveHealth)
	return mux
}

func (m *Metrics) serveHealth(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	ok, problem := m.githubOK && m.nomadOK, m.problem
	m.mu.Unlock()
	if !ok {
		http.Error(w, "unhealthy: "+problem, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (m *Metrics) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	states := map[string]int{}
	for _, s := range m.jobs {
		states[s]++
	}
	b.WriteString("# TYPE solstice_github_jobs gauge\n")
	fmt.Fprintf(&b, "solstice_github_jobs{state=%q} %d\n", stateRunning, states[stateRunning])
	up := 0
	if m.githubOK && m.nomadOK {
		up = 1
	}
	fmt.Fprintf(&b, "# TYPE solstice_github_up gauge\nsolstice_github_up %d\n", up)
	names := make([]string, 0, len(m.counters))
	for n := range m.counters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %g\n", n, m.counters[n])
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, b.String())
}
