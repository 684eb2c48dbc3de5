package nomad

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/eventstest"
)

// linesJobs is a finished job whose events file holds lines.
type linesJobs struct {
	Jobs
	lines []string
}

func (j linesJobs) Status(context.Context, *Job) (Status, error) {
	return Status{Stage: Finished, AllocID: "a1"}, nil
}

func (j linesJobs) Follow(ctx context.Context, _ Status, _ int64, fn func([]byte, int64) error) error {
	return eventstest.Feed(ctx, 0, j.lines, fn)
}

// The step count the guest's events are checked against comes from the
// plan: Tracker.Steps, else the Job's (a resumed job's, read back from
// Nomad), and only when neither is known from the guest's job_started.
func TestTrackerStepCount(t *testing.T) {
	lines := []string{`{"seq":1,"type":"job_started","steps":50}`, `{"seq":2,"type":"step_started","step":40}`}
	tests := []struct {
		name       string
		steps, job int
		want       string // the infra_error's text; empty for none
	}{
		{"from the tracker", 2, 0, "job_started: 50 steps, but the plan has 2"},
		{"from the resumed job", 0, 3, "job_started: 50 steps, but the plan has 3"},
		{"the tracker's first", 2, 3, "job_started: 50 steps, but the plan has 2"},
		{"unknown: the guest's", 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &Tracker{Nomad: linesJobs{lines: lines}, Job: &Job{ID: "j", Steps: tt.job}, Steps: tt.steps,
				Timing: Timing{Status: 5 * time.Millisecond, NoEvent: 20 * time.Millisecond}, Log: hclog.NewNullLogger()}
			var got []contract.Event
			if err := tr.Follow(t.Context(), func(_ context.Context, ev contract.Event) error {
				got = append(got, ev)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(got) != 2 || got[1].Type != contract.TypeStepStarted {
					t.Fatalf("events %+v, want both", got)
				}
				return
			}
			if len(got) != 1 || got[0].Type != contract.TypeInfraError || !strings.Contains(got[0].Message, tt.want) {
				t.Fatalf("events %+v, want one infra_error saying %q", got, tt.want)
			}
		})
	}
}

// The infra_error that ends a stream at a forged event is dated by the
// last good event, never by the forged one (which has no time, or any).
func TestTrackerDatesInvalidByLastGood(t *testing.T) {
	good := time.Date(2026, 12, 2, 4, 31, 22, 0, time.UTC)
	for _, tt := range []struct{ name, bad string }{
		{"no time", `{"seq":9999,"type":"step_started","step":-1}`},
		{"a forged time", `{"seq":9999,"time":"9999-01-01T00:00:00Z","type":"step_started","step":-1}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines := []string{`{"seq":1,"time":"` + good.Format(time.RFC3339Nano) + `","type":"job_started","steps":1}`, tt.bad}
			tr := &Tracker{Nomad: linesJobs{lines: lines}, Job: &Job{ID: "j"}, Steps: 1,
				Timing: Timing{Status: 5 * time.Millisecond, NoEvent: 20 * time.Millisecond}, Log: hclog.NewNullLogger()}
			var got []contract.Event
			if err := tr.Follow(t.Context(), func(_ context.Context, ev contract.Event) error {
				got = append(got, ev)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[1].Type != contract.TypeInfraError || !got[1].Time.Equal(good) {
				t.Fatalf("events %+v, want the infra_error dated %s", got, good)
			}
		})
	}
}

// bootLateJobs is a job whose Booting event reaches the servers only at
// the status read after; its events file starts the job.
type bootLateJobs struct {
	linesJobs
	reads *atomic.Int64 // the tracker reads from two goroutines
	after int64         // the read from which Boot is known; 0: never
}

func (j bootLateJobs) Status(context.Context, *Job) (Status, error) {
	n := j.reads.Add(1)
	st := Status{Stage: Running, AllocID: "a1"}
	if j.after > 0 && n >= j.after {
		st.Boot = "image solstice-test under tcg, restored from template t1"
	}
	return st, nil
}

// A warm clone's job_started can come before the client's update with
// its Booting event: the tracker reads the status again, for a while, so
// the VM-up line can say how the VM came up.
func TestTrackerWaitsForTheBootDetail(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after int64
		want  string
	}{
		{"it comes", 3, "restored from template t1"},
		{"it never comes", 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reads atomic.Int64
			lines := []string{`{"seq":1,"type":"job_started","steps":1}`, `{"seq":2,"type":"job_finished","conclusion":"success"}`}
			tr := &Tracker{Nomad: bootLateJobs{linesJobs: linesJobs{lines: lines}, reads: &reads, after: tt.after}, Job: &Job{ID: "j"}, Steps: 1,
				Timing: Timing{Status: 5 * time.Millisecond, NoEvent: 20 * time.Millisecond}, Log: hclog.NewNullLogger()}
			var boot string
			err := tr.Follow(t.Context(), func(_ context.Context, ev contract.Event) error {
				if ev.Type == contract.TypeJobStarted {
					boot = tr.Latest().Boot
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if boot != "" && !strings.Contains(boot, tt.want) || (tt.want == "") != (boot == "") {
				t.Errorf("at job_started the status says %q, want %q", boot, tt.want)
			}
		})
	}
}
