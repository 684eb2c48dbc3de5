package github

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/solstice-ci/solstice/shim/forge"
)

// Job states the metrics count.
const (
	stateRunning = "running"
)

// Metrics counts what the shim does, for /metrics, and knows whether
// GitHub and Nomad answered their last call, for /healthz.
type Metrics struct {
	reg    *prometheus.Registry
	health *forge.Health

	jobs             *forge.StateGauge[string] // by GitHub job id
	finishedJobs     *prometheus.CounterVec
	dispatch         prometheus.Summary
	brokerErrors     *prometheus.CounterVec
	messages         *prometheus.CounterVec
	sessionConflicts prometheus.Counter
	locksLost        prometheus.Counter
	renewals         *prometheus.CounterVec
	apiCalls         *prometheus.CounterVec
	debug            prometheus.Gauge
}

// NewMetrics returns empty metrics; GitHub and Nomad count as up until a
// call fails.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(), health: forge.NewHealth(forge.Forge, forge.Nomad),
		jobs:         forge.NewStateGauge[string](prometheus.GaugeOpts{Name: "solstice_github_jobs", Help: "Jobs in flight, by state."}, stateRunning),
		finishedJobs: counterVec("solstice_github_jobs_finished_total", "Jobs completed to GitHub, by conclusion.", "conclusion"),
		// A summary without quantiles is exactly the _sum and _count the
		// shim has always exposed.
		dispatch: prometheus.NewSummary(prometheus.SummaryOpts{
			Name: "solstice_github_dispatch_latency_seconds", Help: "Time from acquiring a job to its Nomad dispatch.",
		}),
		brokerErrors:     counterVec("solstice_github_broker_errors_total", "Errors the broker answered a poll with, by kind.", "kind"),
		messages:         counterVec("solstice_github_messages_total", "Messages received from the broker, by type.", "type"),
		sessionConflicts: counter("solstice_github_session_conflicts_total", "Broker sessions refused because another process holds the runner's session."),
		locksLost:        counter("solstice_github_locks_lost_total", "Jobs given up because their lock could not be renewed."),
		renewals:         counterVec("solstice_github_renewals_total", "Job lock renewals, by result.", "result"),
		apiCalls:         counterVec("solstice_github_api_calls_total", "Calls to GitHub's job APIs, by call and result.", "call", "result"),
		debug: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "solstice_github_debug_sessions", Help: "Debug SSH sessions open, each keeping its runner busy.",
		}),
	}
	m.reg.MustRegister(m.jobs, m.finishedJobs, m.dispatch, m.brokerErrors, m.messages,
		m.sessionConflicts, m.locksLost, m.renewals, m.apiCalls, m.debug,
		m.health.UpGauge(prometheus.GaugeOpts{Name: "solstice_github_up", Help: "Whether GitHub and Nomad answered their last call."}))
	return m
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// jobState moves job id to state; "" forgets it.
func (m *Metrics) jobState(id, state string) { m.jobs.Set(id, state) }

func (m *Metrics) finished(conclusion string) { m.finishedJobs.WithLabelValues(conclusion).Inc() }

func (m *Metrics) dispatched(d time.Duration) { m.dispatch.Observe(d.Seconds()) }

func (m *Metrics) brokerError(kind string) { m.brokerErrors.WithLabelValues(kind).Inc() }

func (m *Metrics) message(typ string) { m.messages.WithLabelValues(typ).Inc() }

func (m *Metrics) sessionConflict() { m.sessionConflicts.Inc() }
func (m *Metrics) lockLost()        { m.locksLost.Inc() }

// debugSession counts a debug session opening (+1) or ending (-1).
func (m *Metrics) debugSession(delta float64) { m.debug.Add(delta) }

func (m *Metrics) renewal(err error) { m.renewals.WithLabelValues(result(err)).Inc() }

func (m *Metrics) apiCall(call string, err error) {
	m.apiCalls.WithLabelValues(call, result(err)).Inc()
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// githubCall records whether the broker answered a poll.
func (m *Metrics) githubCall(err error) { m.health.Report(forge.Forge, err) }

func (m *Metrics) nomadCall(err error) { m.health.Report(forge.Nomad, err) }

// Healthy reports whether GitHub and Nomad answered their last calls, and
// if not, why.
func (m *Metrics) Healthy() (bool, string) { return m.health.Healthy() }

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler { return forge.Handler(m.reg, m.health) }
