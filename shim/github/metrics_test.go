package github

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/metricstest"
)

// exposed is every metric /metrics has exposed, with its labels
// (docs/github.md names the broker errors): dashboards and alerts are
// built on them. Before client_golang only the gauges had a # TYPE line;
// the series are the same.
var exposed = []metricstest.Metric{
	{Name: "solstice_github_jobs", Type: "gauge", Labels: "state"},
	{Name: "solstice_github_up", Type: "gauge"},
	{Name: "solstice_github_jobs_finished_total", Type: "counter", Labels: "conclusion"},
	{Name: "solstice_github_dispatch_latency_seconds", Type: "summary"}, // its _sum and _count
	{Name: "solstice_github_broker_errors_total", Type: "counter", Labels: "kind"},
	{Name: "solstice_github_messages_total", Type: "counter", Labels: "type"},
	{Name: "solstice_github_session_conflicts_total", Type: "counter"},
	{Name: "solstice_github_locks_lost_total", Type: "counter"},
	{Name: "solstice_github_renewals_total", Type: "counter", Labels: "result"},
	{Name: "solstice_github_api_calls_total", Type: "counter", Labels: "call,result"},
	{Name: "solstice_github_debug_sessions", Type: "gauge"},
}

// TestMetricNamesUnchanged scrapes /metrics after one of every event and
// finds each metric of exposed.
func TestMetricNamesUnchanged(t *testing.T) {
	m := NewMetrics()
	m.jobState("1", stateRunning)
	m.finished("succeeded")
	m.dispatched(time.Second)
	m.brokerError("RunnerVersionTooOld")
	m.message("PipelineAgentJobRequest")
	m.sessionConflict()
	m.lockLost()
	m.renewal(nil)
	m.apiCall("acquire_job", errors.New("502"))
	m.debugSession(1)
	m.githubCall(nil)
	m.nomadCall(nil)
	metricstest.Scrape(t, m.Handler()).Expect(t, exposed)
}

// TestHealthz: /healthz fails while GitHub or Nomad failed its last call,
// and says "unhealthy" (what a service check's output is matched on).
func TestHealthz(t *testing.T) {
	m := NewMetrics()
	m.githubCall(nil)
	m.nomadCall(nil)
	if code, body := metricstest.Get(t, m.Handler(), "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	m.githubCall(errors.New("connection refused"))
	code, body := metricstest.Get(t, m.Handler(), "/healthz")
	if code != 503 || !strings.HasPrefix(body, "unhealthy\n") || !strings.Contains(body, "forge unreachable since") {
		t.Fatalf("/healthz with GitHub down = %d %q", code, body)
	}
	if !strings.Contains(metricstest.Scrape(t, m.Handler()).Body, "\nsolstice_github_up 0\n") {
		t.Error("solstice_github_up is not 0 while GitHub is down")
	}
}
