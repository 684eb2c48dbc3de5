package forgejo

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/solstice-ci/solstice/shim/forge"
)

// Task states as /metrics counts them.
const (
	statePreparing = "preparing"
	stateQueued    = "queued"
	stateBooting   = "booting"
	stateRunning   = "running"
	stateReporting = "reporting"
)

// latencyBuckets are seconds, from a quick dispatch to a long queue.
var latencyBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Metrics are the runner's Prometheus metrics and its health.
type Metrics struct {
	reg    *prometheus.Registry
	health *forge.Health

	mu  sync.Mutex    // keeps lag to the tasks in flight
	lag map[int64]int // task -> log rows the forge has not stored

	tasks     *forge.StateGauge[int64]
	results   *prometheus.CounterVec
	apiCalls  *prometheus.CounterVec
	apiErrors *prometheus.CounterVec
	dispatch  prometheus.Histogram
	firstStep prometheus.Histogram
	lagRows   prometheus.Gauge
	debug     prometheus.Gauge
}

// NewMetrics returns empty metrics; forge and Nomad count as healthy until
// a call fails.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(), health: forge.NewHealth(forge.Forge, forge.Nomad),
		lag: map[int64]int{},
		tasks: forge.NewStateGauge[int64](prometheus.GaugeOpts{Name: "solstice_forgejo_tasks", Help: "Tasks in flight, by state."},
			statePreparing, stateQueued, stateBooting, stateRunning, stateReporting),
		results:   counterVec("solstice_forgejo_tasks_finished_total", "Tasks reported to the forge as finished, by result.", "result"),
		apiCalls:  counterVec("solstice_forgejo_api_calls_total", "Runner protocol calls to the forge, by method.", "method"),
		apiErrors: counterVec("solstice_forgejo_api_errors_total", "Runner protocol calls to the forge that failed, by method.", "method"),
		dispatch:  latency("solstice_forgejo_dispatch_latency_seconds", "Time from fetching a task to its Nomad dispatch."),
		firstStep: latency("solstice_forgejo_first_step_latency_seconds", "Time from fetching a task to its first step starting in the VM."),
		lagRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "solstice_forgejo_log_lag_rows", Help: "Log rows rendered but not yet stored by the forge.",
		}),
		debug: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "solstice_forgejo_debug_sessions", Help: "Debug SSH sessions open, each holding its task's runner slot.",
		}),
	}
	m.reg.MustRegister(m.tasks, m.results, m.apiCalls, m.apiErrors, m.dispatch, m.firstStep, m.lagRows, m.debug)
	for _, dep := range []forge.Dependency{forge.Forge, forge.Nomad} {
		m.reg.MustRegister(m.health.UpGauge(prometheus.GaugeOpts{
			Name: "solstice_forgejo_up", Help: "Whether the forge and Nomad answered their last call.",
			ConstLabels: prometheus.Labels{"dependency": string(dep)},
		}, dep))
	}
	return m
}

func counterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
}

func latency(name, help string) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets})
}

// taskState moves task id to state; "" forgets the task.
func (m *Metrics) taskState(id int64, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tasks.Set(id, state)
	if state == "" {
		m.lagRows.Sub(float64(m.lag[id]))
		delete(m.lag, id)
	}
}

func (m *Metrics) taskResult(result string) { m.results.WithLabelValues(result).Inc() }

func (m *Metrics) dispatched(d time.Duration) { m.dispatch.Observe(d.Seconds()) }

// debugSession counts a debug session opening (+1) or ending (-1).
func (m *Metrics) debugSession(delta float64) { m.debug.Add(delta) }

func (m *Metrics) firstStepStarted(d time.Duration) { m.firstStep.Observe(d.Seconds()) }

// logLag sets how many of a task's log rows the forge has not stored; a
// task no longer in flight has none.
func (m *Metrics) logLag(id int64, rows int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks.Has(id) {
		m.lagRows.Add(float64(rows - m.lag[id]))
		m.lag[id] = rows
	}
}

// forgeCall records the outcome of a forge RPC. Errors about one task (a
// closed log, a task the forge gave away) say nothing about the forge's
// health.
func (m *Metrics) forgeCall(method string, err error) {
	m.apiCalls.WithLabelValues(method).Inc()
	if err != nil {
		m.apiErrors.WithLabelValues(method).Inc()
	}
	if errors.Is(err, ErrLogClosed) || errors.Is(err, ErrTaskGone) {
		return
	}
	m.health.Report(forge.Forge, err)
}

func (m *Metrics) nomadCall(err error) { m.health.Report(forge.Nomad, err) }

// Healthy reports whether the forge and Nomad answered their last calls,
// and if not, why.
func (m *Metrics) Healthy() (bool, string) { return m.health.Healthy() }

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler { return forge.Handler(m.reg, m.health) }
