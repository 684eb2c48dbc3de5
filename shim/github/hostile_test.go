package github

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/eventstest"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// rawJobs is Nomad serving an events file written by a hostile guest.
type rawJobs struct {
	nomad.Jobs
	lines []string
}

func (j rawJobs) Status(context.Context, *nomad.Job) (nomad.Status, error) {
	return nomad.Status{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitInfrastructure}, nil
}

func (j rawJobs) Follow(ctx context.Context, _ nomad.Status, _ int64, fn func([]byte, int64) error) error {
	return eventstest.Feed(ctx, 0, j.lines, fn)
}

// Forged events reach the renderer only as the Tracker's infra_error: the
// job fails with what was wrong, and nothing panics.
func TestForgedEventsFailTheJob(t *testing.T) {
	const start = `{"seq":1,"type":"job_started","steps":3}`
	for _, tc := range []struct{ name, line, want string }{
		{"the attacker's line", `{"seq":9999,"type":"step_started","step":-1}`, "at offset 41: step_started: step index -1, outside the plan's 3 steps"},
		{"step past the plan", `{"seq":2,"type":"step_finished","step":12,"conclusion":"success","exit_code":1}`, "step index 12, outside the plan's 3 steps"},
		{"finished unstarted", `{"seq":2,"type":"step_finished","step":1,"conclusion":"success"}`, "step 2 finished but did not run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &nomad.Tracker{Nomad: rawJobs{lines: []string{start, tc.line, `{"seq":3,"ty`}},
				Timing: nomad.Timing{Status: 5 * time.Millisecond, NoEvent: 20 * time.Millisecond}, Log: hclog.NewNullLogger()}
			var evs []contract.Event
			err := tr.Follow(t.Context(), func(_ context.Context, ev contract.Event) error {
				ev.Seq = 0 // render numbers them
				evs = append(evs, ev)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			b, res := render(t, evs, nomad.Status{Stage: nomad.Finished, ExitCode: contract.ExitInfrastructure})
			if res != "failed" {
				t.Errorf("result %q, want failed", res)
			}
			log := string(b.complete().log()) + string(b.setup().log())
			for _, s := range b.steps {
				log += string(s.log())
			}
			if !strings.Contains(log, "the guest sent an invalid event at offset ") || !strings.Contains(log, tc.want) {
				t.Errorf("logs lack %q:\n%s", tc.want, log)
			}
		})
	}
}

// The tracker checks the guest's events against the step count of the
// plan the shim dispatched, not the one the guest's job_started claims.
func TestTrackerTakesStepsFromThePlan(t *testing.T) {
	msg := loadJob(t)
	tk := &task{sh: &Shim{}, msg: msg, job: &nomad.Job{ID: "solstice-solstice-test/dispatch-1"}, log: hclog.NewNullLogger()}
	tr := tk.tracker()
	tr.Nomad = rawJobs{lines: []string{`{"seq":1,"type":"job_started","steps":50}`, `{"seq":2,"type":"step_started","step":40}`}}
	tr.Timing = nomad.Timing{Status: 5 * time.Millisecond, NoEvent: 20 * time.Millisecond}
	var evs []contract.Event
	if err := tr.Follow(t.Context(), func(_ context.Context, ev contract.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("job_started: 50 steps, but the plan has %d", len(msg.Steps))
	if len(evs) != 1 || evs[0].Type != contract.TypeInfraError || !strings.Contains(evs[0].Message, want) {
		t.Fatalf("events %+v, want one infra_error saying %q", evs, want)
	}
}

// A job's log is held in memory until it ends, so it is capped: past
// maxJobLog one warning says so and later lines are dropped, while the
// closing lines still show.
func TestJobLogIsCapped(t *testing.T) {
	b := newBook(loadJob(t).JobID, loadJob(t).Steps)
	chunk := strings.Repeat("x", 1<<20)
	for i := 0; i < 80; i++ { // 80 MiB
		b.jobStep(i%2).line(at(i), chunk)
	}
	b.complete().line(at(100), "Job failed")
	total, warnings := 0, 0
	for _, s := range b.steps {
		for _, l := range s.lines {
			total += len(l)
			if strings.Contains(l, "Output truncated by the runner: the job's log is over 64 MiB") {
				warnings++
			}
		}
	}
	if total > maxJobLog+1024 || total < maxJobLog-(2<<20) || warnings != 1 {
		t.Fatalf("%d bytes held, %d warnings", total, warnings)
	}
	if !strings.Contains(string(b.complete().log()), "Job failed") {
		t.Fatal("the closing line was dropped")
	}
}
