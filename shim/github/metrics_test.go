package github

import (
	"errors"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/shim/forge/forgetest"
)

// exposed is every metric /metrics has exposed, with its labels
// (docs/github.md names the broker errors): dashboards and alerts are
// built on them. The counters and the latency's sum and count carried no
// # TYPE line.
var exposed = []forgetest.Metric{
	{Name: "solstice_github_jobs", Type: "gauge", Labels: "state"},
	{Name: "solstice_github_up", Type: "gauge"},
	{Name: "solstice_github_jobs_finished_total", Labels: "conclusion"},
	{Name: "solstice_github_dispatch_latency_seconds_sum"},
	{Name: "solstice_github_dispatch_latency_seconds_count"},
	{Name: "solstice_github_broker_errors_total", Labels: "kind"},
	{Name: "solstice_github_messages_total", Labels: "type"},
	{Name: "solstice_github_session_conflicts_total"},
	{Name: "solstice_github_locks_lost_total"},
	{Name: "solstice_github_renewals_total", Labels: "result"},
	{Name: "solstice_github_api_calls_total", Labels: "call,result"},
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
	m.githubCall(nil)
	m.nomadCall(nil)
	forgetest.Scrape(t, m.Handler()).Expect(t, exposed)
}
