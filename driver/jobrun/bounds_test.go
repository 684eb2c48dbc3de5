package jobrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
)

// endless is a guest that writes log events without end (and, when hang
// is set, writes a few then nothing more, never finishing).
type endless struct {
	hang bool
	seq  int64
	ctx  context.Context
}

func (g *endless) Read(p []byte) (int, error) {
	if g.hang && g.seq >= 3 {
		<-g.ctx.Done() // as an SSH session closed when the follow ends
		return 0, g.ctx.Err()
	}
	g.seq++
	ev := contract.Event{Seq: g.seq, Type: contract.TypeLog, Step: contract.JobLevel, Line: strings.Repeat("x", 100)}
	if g.seq == 1 {
		ev = contract.Event{Seq: 1, Type: contract.TypeJobStarted, Steps: 1}
	}
	return copy(p, contract.MarshalEvent(&ev)), nil // lines are shorter than the Tail's reads
}

func (g *endless) Close() error { return nil }

func testRunner(t *testing.T, g *endless) (*Runner, string) {
	p := filepath.Join(t.TempDir(), "events.jsonl")
	return &Runner{Log: hclog.NewNullLogger(), Events: p, Out: io.Discard,
		open: func(ctx context.Context, _ int64) (io.ReadCloser, error) { g.ctx = ctx; return g, nil }}, p
}

// lastEvent is the events file's last event.
func lastEvent(t *testing.T, p string) (contract.Event, int64) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	ev, err := contract.DecodeEvent([]byte(lines[len(lines)-1]))
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := contract.DecodeEvent([]byte(lines[len(lines)-2]))
	if ev.Seq != prev.Seq+1 {
		t.Errorf("infra_error seq %d after %d", ev.Seq, prev.Seq)
	}
	return ev, int64(len(data))
}

func TestEndlessOutputStopsAtMaxEvents(t *testing.T) {
	r, p := testRunner(t, &endless{})
	r.MaxEvents = 1 << 20
	code, err := r.Follow(t.Context(), nil)
	want := fmt.Sprintf("the job's event stream exceeded max_events_size (%d bytes)", r.MaxEvents)
	if code != contract.ExitInfrastructure || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("code %d, error %v", code, err)
	}
	ev, size := lastEvent(t, p)
	if ev.Type != contract.TypeInfraError || !strings.Contains(ev.Message, want) {
		t.Fatalf("last event %+v", ev)
	}
	if size > r.MaxEvents+1024 {
		t.Fatalf("events file is %d bytes, limit %d", size, r.MaxEvents)
	}
}

func TestHungJobEndsAtItsDeadline(t *testing.T) {
	r, p := testRunner(t, &endless{hang: true})
	var cancels atomic.Int32
	r.cancel = func(context.Context) error { cancels.Add(1); return nil }
	r.Deadline, r.Grace = time.Now().Add(50*time.Millisecond), 50*time.Millisecond
	ctx, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	code, err := r.Follow(ctx, nil)
	want := "the job ran past its deadline of " + r.Deadline.UTC().Format(time.RFC3339)
	if code != contract.ExitInfrastructure || err == nil || !strings.Contains(err.Error(), want) || ctx.Err() != nil {
		t.Fatalf("code %d, error %v", code, err)
	}
	if cancels.Load() != 1 {
		t.Fatalf("%d cancels, want 1", cancels.Load())
	}
	if ev, _ := lastEvent(t, p); ev.Type != contract.TypeInfraError || !strings.Contains(ev.Message, want) {
		t.Fatalf("last event %+v", ev)
	}
}

func TestDeadline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		plan *contract.Plan
		want time.Duration
	}{
		{nil, 375 * time.Minute},
		{&contract.Plan{TimeoutMinutes: 10, CancelTimeoutMinutes: 1}, 21 * time.Minute},
		{&contract.Plan{TimeoutMinutes: 1e300}, 30*24*time.Hour + 15*time.Minute},
	} {
		if got := Deadline(start, tc.plan).Sub(start); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.plan, got, tc.want)
		}
	}
}
