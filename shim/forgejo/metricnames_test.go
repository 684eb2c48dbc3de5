package forgejo

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/metricstest"
)

// exposed is every metric /metrics has exposed, with its type and label
// names (docs/shims.md, doc.go): dashboards and alerts are built on them.
var exposed = []metricstest.Metric{
	{Name: "solstice_forgejo_tasks", Type: "gauge", Labels: "state"},
	{Name: "solstice_forgejo_tasks_finished_total", Type: "counter", Labels: "result"},
	{Name: "solstice_forgejo_api_calls_total", Type: "counter", Labels: "method"},
	{Name: "solstice_forgejo_api_errors_total", Type: "counter", Labels: "method"},
	{Name: "solstice_forgejo_dispatch_latency_seconds", Type: "histogram"},
	{Name: "solstice_forgejo_first_step_latency_seconds", Type: "histogram"},
	{Name: "solstice_forgejo_log_lag_rows", Type: "gauge"},
	{Name: "solstice_forgejo_debug_sessions", Type: "gauge"},
	{Name: "solstice_forgejo_up", Type: "gauge", Labels: "dependency"},
}

// TestMetricNamesUnchanged scrapes /metrics after one of every event and
// finds each metric of exposed.
func TestMetricNamesUnchanged(t *testing.T) {
	m := NewMetrics()
	m.taskState(1, stateRunning)
	m.logLag(1, 3)
	m.taskResult("failure")
	m.dispatched(time.Second)
	m.firstStepStarted(time.Minute)
	m.forgeCall("FetchTask", errors.New("refused"))
	m.nomadCall(nil)
	metricstest.Scrape(t, m.Handler()).Expect(t, exposed)
}

// TestHistogramBuckets: both latencies keep the buckets they always had,
// and an empty histogram still shows them.
func TestHistogramBuckets(t *testing.T) {
	want := []string{"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300", "600", "1800", "3600", "+Inf"}
	e := metricstest.Scrape(t, NewMetrics().Handler())
	for _, h := range []string{"solstice_forgejo_dispatch_latency_seconds", "solstice_forgejo_first_step_latency_seconds"} {
		if got := e.Buckets(h); !slices.Equal(got, want) {
			t.Errorf("%s buckets %v, want %v", h, got, want)
		}
	}
}
