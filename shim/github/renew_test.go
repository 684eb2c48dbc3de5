package github

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// renewTask is a task whose run service answers renewjob with answer.
func renewTask(t *testing.T, answer func(n int32) int) (*task, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/renewjob") {
			http.NotFound(w, r)
			return
		}
		status := answer(calls.Add(1))
		w.WriteHeader(status)
		if status == http.StatusOK {
			fmt.Fprintf(w, `{"lockedUntil":%q}`, time.Now().Add(3*time.Second).UTC().Format(time.RFC3339Nano))
		}
	}))
	t.Cleanup(srv.Close)
	m := loadJob(t)
	m.Resources.Endpoints[0].URL = srv.URL + "/"
	m.LockedUntil = time.Time{}
	sh := &Shim{cfg: Config{Timing: Timing{Renew: 100 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}}, metrics: NewMetrics(), log: hclog.NewNullLogger()}
	jc, err := protocol.NewJobClient(m, "", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &task{sh: sh, msg: m, jc: jc, log: sh.log, lost: make(chan struct{}), cancelled: make(chan struct{})}, &calls
}

func TestRenew(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(n int32) int
		wantLost bool
	}{
		{"renewed every interval", func(int32) int { return http.StatusOK }, false},
		{"a passing outage is ridden out", func(n int32) int {
			if n == 2 || n == 3 {
				return http.StatusBadGateway
			}
			return http.StatusOK
		}, false},
		{"GitHub forgot the job", func(int32) int { return http.StatusNotFound }, true},
		{"failing past lockedUntil", func(int32) int { return http.StatusInternalServerError }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, calls := renewTask(t, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() { defer close(done); tk.renew(ctx) }()
			select {
			case <-tk.lost:
				if !tt.wantLost {
					t.Fatalf("the lock was lost after %d calls", calls.Load())
				}
			case <-done:
				if tt.wantLost {
					t.Fatalf("the lock was kept through %d failing calls", calls.Load())
				}
				if calls.Load() < 5 {
					t.Errorf("%d renewals in a second at a 100 ms interval", calls.Load())
				}
			}
		})
	}
}
