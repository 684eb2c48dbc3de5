package forgejo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/metricstest"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.taskState(1, stateQueued)
	m.taskState(2, stateRunning)
	m.logLag(2, 17)
	m.taskResult("success")
	m.dispatched(300 * time.Millisecond)
	m.firstStepStarted(42 * time.Second)
	m.forgeCall("FetchTask", nil)
	m.forgeCall("UpdateLog", errors.New("502"))
	code, body := metricstest.Get(t, m.Handler(), "/metrics")
	for _, want := range []string{
		`solstice_forgejo_tasks{state="queued"} 1`,
		`solstice_forgejo_tasks{state="running"} 1`,
		`solstice_forgejo_tasks{state="booting"} 0`,
		`solstice_forgejo_tasks_finished_total{result="success"} 1`,
		`solstice_forgejo_api_errors_total{method="UpdateLog"} 1`,
		`solstice_forgejo_dispatch_latency_seconds_bucket{le="0.5"} 1`,
		`solstice_forgejo_dispatch_latency_seconds_bucket{le="0.25"} 0`,
		`solstice_forgejo_first_step_latency_seconds_count 1`,
		`solstice_forgejo_log_lag_rows 17`,
		`solstice_forgejo_up{dependency="forge"} 0`,
		`solstice_forgejo_up{dependency="nomad"} 1`,
		"# TYPE solstice_forgejo_dispatch_latency_seconds histogram",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name  string
		forge error
		nomad error
		code  int
		body  string
	}{
		{"all up", nil, nil, 200, "ok"},
		{"forge down", errors.New("connection refused"), nil, 503, "forge unreachable"},
		{"nomad down", nil, errors.New("no leader"), 503, "nomad unreachable"},
		{"a task's closed log is not an outage", ErrLogClosed, nil, 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			m.forgeCall("UpdateLog", tt.forge)
			m.nomadCall(tt.nomad)
			code, body := metricstest.Get(t, m.Handler(), "/healthz")
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("/healthz = %d %q", code, body)
			}
		})
	}
}
