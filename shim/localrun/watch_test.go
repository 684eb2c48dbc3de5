package localrun

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/eventstest"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/workflow"
)

// scriptedJobs is Nomad playing one job: its statuses in turn (the last
// one repeats) and its events, which start once it is placed and, when
// holdUntilCancel is set, end only after a cancel.
type scriptedJobs struct {
	nomad.Jobs
	mu              sync.Mutex
	statuses        []nomad.Status
	events          []contract.Event
	holdUntilCancel bool
	cancelled       chan struct{}
	onCancel        []nomad.Status // the statuses after a cancel
	raw             []string       // lines written as they are after the events
	debug           bool           // the plan asked for a debug session
}

func (s *scriptedJobs) Status(context.Context, *nomad.Job) (nomad.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.statuses[0]
	if len(s.statuses) > 1 {
		s.statuses = s.statuses[1:]
	}
	return st, nil
}

func (s *scriptedJobs) Follow(ctx context.Context, _ nomad.Status, _ int64, fn func([]byte, int64) error) error {
	var off int64
	for i, ev := range s.events {
		if s.holdUntilCancel && i == len(s.events)-1 {
			select {
			case <-s.cancelled:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ev.Seq = int64(i + 1)
		line := contract.MarshalEvent(&ev)
		off += int64(len(line))
		if err := fn(line[:len(line)-1], off); err != nil {
			if err == contract.ErrStop {
				return nil
			}
			return err
		}
	}
	return eventstest.Feed(ctx, off, s.raw, fn)
}

func (s *scriptedJobs) Cancel(context.Context, *nomad.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.cancelled)
	s.statuses = s.onCancel
	return nil
}

// watchScript watches the job s plays; noEvent is how long a finished
// job may lack its last event.
func watchScript(t *testing.T, ctx context.Context, s *scriptedJobs, noEvent time.Duration) (*result, string) {
	t.Helper()
	timing = nomad.Timing{Status: 5 * time.Millisecond, NoEvent: noEvent, EndWait: time.Second, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	var out strings.Builder
	s.cancelled = make(chan struct{})
	r := &runner{opts: Options{Log: hclog.NewNullLogger()}, print: newPrinter(&out), d: s}
	res := &result{run: workflow.Run{Name: "build", Steps: []*workflow.Step{{Run: "make"}}}, label: "solstice-test", started: time.Now()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.watch(ctx, res, &nomad.Job{ID: "solstice-solstice-test/dispatch-1", Debug: s.debug})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not return; output so far:\n%s", out.String())
	}
	return res, out.String()
}

var placed = []nomad.Status{
	{Stage: nomad.Queued}, {Stage: nomad.Booting, AllocID: "a1", Node: "node-1"},
	{Stage: nomad.Running, AllocID: "a1", Node: "node-1"},
}

func steps(end contract.Event) []contract.Event {
	code := 0
	return []contract.Event{
		{Type: contract.TypeJobStarted, Steps: 1},
		{Type: contract.TypeStepStarted, Step: 0, Name: "Build"},
		{Type: contract.TypeLog, Step: 0, Stream: contract.Stdout, Line: "hello"},
		{Type: contract.TypeStepFinished, Step: 0, Outcome: contract.Success, Conclusion: contract.Success, ExitCode: &code},
		{Type: contract.TypeOutputs, Outputs: map[string]string{"v": "1"}},
		end,
	}
}

func TestWatchFollowsTheJob(t *testing.T) {
	s := &scriptedJobs{
		statuses: append(placed, nomad.Status{Stage: nomad.Finished, AllocID: "a1", Node: "node-1"}),
		events:   steps(contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Success}),
	}
	res, out := watchScript(t, context.Background(), s, time.Second)
	for _, want := range []string{
		"build │ queued as Nomad job solstice-solstice-test/dispatch-1\n",
		"build │ booting a solstice-test VM on node-1\n",
		"build │ running\n",
		"build │ ▶ Build\nbuild │   hello\nbuild │ ✓ Build\n",
		"build │ ✓ job success in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if res.conclusion != contract.Success || res.code != contract.ExitSuccess || res.note != "" || res.outputs["v"] != "1" {
		t.Errorf("result %+v", res)
	}
}

func TestWatchNodeLost(t *testing.T) {
	lost := nomad.Status{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitInfrastructure, Problem: "the Nomad client running the job was lost"}
	s := &scriptedJobs{statuses: append(placed, lost), events: steps(contract.Event{})[:3], holdUntilCancel: true}
	res, out := watchScript(t, context.Background(), s, 20*time.Millisecond)
	if res.conclusion != contract.Failure || res.code != contract.ExitInfrastructure || res.note != lost.Problem {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(out, "build │ ✗ job failure in ") {
		t.Errorf("output:\n%s", out)
	}
}

func TestWatchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &scriptedJobs{
		statuses:        placed,
		events:          steps(contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Cancelled}),
		holdUntilCancel: true,
		onCancel:        []nomad.Status{{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitCancelled}},
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	res, out := watchScript(t, ctx, s, time.Second)
	if !strings.Contains(out, "build │ cancelling: stopping Nomad job solstice-solstice-test/dispatch-1\n") ||
		!strings.Contains(out, "build │ ⊘ job cancelled in ") {
		t.Errorf("output:\n%s", out)
	}
	if res.conclusion != contract.Cancelled || res.code != contract.ExitCancelled {
		t.Errorf("result %+v", res)
	}
}

// A hostile guest's forged line, then a truncated one: the job fails
// with what was wrong, and watch returns (it used to hang).
func TestWatchForgedEvent(t *testing.T) {
	ended := nomad.Status{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitInfrastructure}
	s := &scriptedJobs{statuses: append(placed, ended), events: steps(contract.Event{})[:3],
		raw: []string{`{"seq":9999,"type":"step_started","step":-1}`, `{"seq":10000,"type":"lo`}}
	res, out := watchScript(t, context.Background(), s, 20*time.Millisecond)
	want := "the guest sent an invalid event at offset "
	if res.conclusion != contract.Failure || res.code != contract.ExitInfrastructure || !strings.Contains(res.note, want) ||
		!strings.Contains(res.note, "step_started: step index -1, outside the plan's 1 steps") {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(out, "build │ ✗ infrastructure error: "+want) {
		t.Errorf("output:\n%s", out)
	}
}

// A guest that claims more steps than the run's plan is refused at its
// job_started: the count comes from the plan solstice run dispatched.
func TestWatchForgedStepCount(t *testing.T) {
	ended := nomad.Status{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitInfrastructure}
	s := &scriptedJobs{statuses: append(placed, ended),
		raw: []string{`{"seq":1,"type":"job_started","steps":50}`, `{"seq":2,"type":"step_started","step":40,"name":"forged"}`}}
	res, out := watchScript(t, context.Background(), s, 20*time.Millisecond)
	want := "the guest sent an invalid event at offset 0: job_started: 50 steps, but the plan has 1"
	if res.conclusion != contract.Failure || res.code != contract.ExitInfrastructure || !strings.Contains(res.note, want) {
		t.Errorf("result %+v", res)
	}
	if strings.Contains(out, "forged") {
		t.Errorf("the forged step was shown:\n%s", out)
	}
}

// A failed job whose plan asked for a debug session: solstice run prints
// the driver's connection line and how to end it, follows the stream past
// job_finished to the session's end, and the result stays the job's.
func TestWatchDebugSession(t *testing.T) {
	session := &contract.DebugSession{Host: "127.0.0.1", Port: 40022, User: "solstice", Expires: time.Now().Add(time.Hour)}
	evs := append(steps(contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Failure}),
		contract.Event{Type: contract.TypeDebugSession, Debug: session, Message: "Debug session for alice: " + session.Command() + " (open until …; log out to end it earlier, or cancel the run)"},
		contract.Event{Type: contract.TypeDebugEnded, Message: "Debug session ended: the user logged out."})
	s := &scriptedJobs{statuses: append(placed, nomad.Status{Stage: nomad.Finished, AllocID: "a1", ExitCode: contract.ExitJobFailed}), events: evs, debug: true}
	res, out := watchScript(t, context.Background(), s, time.Second)
	for _, want := range []string{
		"build │ Debug session for alice: ssh -p 40022 solstice@127.0.0.1 (open until",
		"build │ Ctrl-C ends the session and the run at once\n",
		"build │ Debug session ended: the user logged out.\n",
		"build │ ✗ job failure in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Debug session ended") > strings.Index(out, "job failure") {
		t.Errorf("the job's end came before the session's:\n%s", out)
	}
	if res.conclusion != contract.Failure || res.code != contract.ExitJobFailed {
		t.Errorf("result %+v", res)
	}
}
