package forgejo

import (
	"context"
	"sync"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solstice-ci/solstice/internal/contract"
)

// maxPending bounds the rows a task holds that the forge has not stored
// yet. When the forge is slow or away, reading the events stops there: the
// events file keeps the rest.
const maxPending = 20000

// maxPendingBytes bounds the same rows by size: a guest's rows can be
// up to contract.MaxLine each, and 20000 of those would be 160 GiB. It is
// checked before each event, so one event's rows may go past it.
const maxPendingBytes = 64 << 20

// journal is one task's log as the forge stores it: rows in order, step
// states pointing into them, job outputs and the result. It is filled by
// the renderer and drained by the reporter.
//
// Rows below base were stored by the forge before (the shim restarted and
// renders the task again from the start): they are counted, not kept.
type journal struct {
	mu      sync.Mutex
	total   int64 // rows rendered, the index of the next row
	base    int64 // the forge has stored every row below base
	pending []*runnerv1.LogRow
	bytes   int // the pending rows' content
	steps   []*runnerv1.StepState
	open    int // the step whose rows are being written; -1 for none
	outputs map[string]string
	started time.Time
	result  runnerv1.Result
	stopped time.Time

	changed chan struct{} // something new to report (buffered 1)
	urgent  chan struct{} // a step started or finished (buffered 1)
	room    chan struct{} // rows were acknowledged (buffered 1)
}

func newJournal(base int64) *journal {
	return &journal{
		base: base, total: 0, open: -1,
		changed: make(chan struct{}, 1), urgent: make(chan struct{}, 1), room: make(chan struct{}, 1),
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// row appends one row; it belongs to the open step.
func (j *journal) row(t time.Time, content string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.open >= 0 {
		j.steps[j.open].LogLength++
	}
	if j.total >= j.base {
		j.pending = append(j.pending, &runnerv1.LogRow{Time: timestamppb.New(t), Content: content})
		j.bytes += len(content)
	}
	j.total++
	notify(j.changed)
}

// setSteps makes sure there are n step states (ids 0…n-1).
func (j *journal) setSteps(n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.growSteps(n)
}

func (j *journal) growSteps(n int) {
	for i := len(j.steps); i < n; i++ {
		j.steps = append(j.steps, &runnerv1.StepState{Id: int64(i), LogIndex: j.total})
	}
}

// stepStarted opens step i: rows from now on are its rows.
func (j *journal) stepStarted(i int, t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i < 0 || i >= contract.MaxSteps {
		return // the Tracker fails such a job; never index by it
	}
	j.growSteps(i + 1)
	s := j.steps[i]
	s.StartedAt, s.LogIndex, s.LogLength = timestamppb.New(t), j.total, 0
	j.open = i
	notify(j.urgent)
}

// stepFinished records step i's result. Its range stays open until the
// next step starts, so lines between steps show under the step before.
func (j *journal) stepFinished(i int, r runnerv1.Result, t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i < 0 || i >= contract.MaxSteps {
		return // the Tracker fails such a job; never index by it
	}
	j.growSteps(i + 1)
	s := j.steps[i]
	if s.StartedAt == nil {
		s.StartedAt, s.LogIndex = timestamppb.New(t), j.total
	}
	s.Result, s.StoppedAt = r, timestamppb.New(t)
	notify(j.urgent)
}

// closeSteps ends the last step's range: later rows are the job's
// closing lines ("Complete job").
func (j *journal) closeSteps() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.open = -1
}

func (j *journal) setStarted(t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started.IsZero() && !t.IsZero() {
		j.started = t
	}
}

func (j *journal) setOutputs(o map[string]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outputs = o
	notify(j.urgent)
}

// finish records the job's result. Steps still open end like the job;
// steps that never started are skipped.
func (j *journal) finish(r runnerv1.Result, t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.steps {
		switch {
		case s.Result != runnerv1.Result_RESULT_UNSPECIFIED:
		case s.StartedAt == nil:
			s.Result, s.LogIndex = runnerv1.Result_RESULT_SKIPPED, j.total
		default:
			s.Result, s.StoppedAt = endResult(r), timestamppb.New(t)
		}
	}
	j.open = -1
	j.result, j.stopped = r, t
	notify(j.urgent)
}

// endResult is how a step that was still running ended.
func endResult(job runnerv1.Result) runnerv1.Result {
	if job == runnerv1.Result_RESULT_SUCCESS {
		return runnerv1.Result_RESULT_CANCELLED
	}
	return job
}

// state is the task state to report; final adds the result.
func (j *journal) state(id int64, final bool) (*runnerv1.UpdateTaskRequest, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := &runnerv1.TaskState{Id: id}
	if !j.started.IsZero() {
		st.StartedAt = timestamppb.New(j.started)
	}
	for _, s := range j.steps {
		st.Steps = append(st.Steps, proto.Clone(s).(*runnerv1.StepState))
	}
	done := j.result != runnerv1.Result_RESULT_UNSPECIFIED
	if final && done {
		st.Result, st.StoppedAt = j.result, timestamppb.New(j.stopped)
	}
	outputs := map[string]string{}
	for k, v := range j.outputs {
		outputs[k] = v
	}
	return &runnerv1.UpdateTaskRequest{State: st, Outputs: outputs}, done
}

// batchBytes bounds the text of one UpdateLog batch (a row holds up to
// 64 KiB).
const batchBytes = 1 << 20

// unsent returns the index of the first row the forge has not stored and
// up to max rows from there, at most batchBytes of them (but at least one).
func (j *journal) unsent(max int) (int64, []*runnerv1.LogRow) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n, size := 0, 0
	for n < len(j.pending) && n < max {
		size += len(j.pending[n].Content)
		if n > 0 && size > batchBytes {
			break
		}
		n++
	}
	return j.base, j.pending[:n:n]
}

// acked drops the rows the forge says it stored. An ack below base means
// the forge lost rows it had: they cannot be rendered again, so the gap is
// filled with rows saying so, keeping every later index right.
func (j *journal) acked(ack int64) (lost int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	defer notify(j.room)
	switch {
	case ack < j.base:
		lost = j.base - ack
		filler := make([]*runnerv1.LogRow, 0, lost+int64(len(j.pending)))
		for range lost {
			filler = append(filler, &runnerv1.LogRow{Time: timestamppb.Now(), Content: lostRow})
		}
		j.bytes += int(lost) * len(lostRow)
		j.pending = append(filler, j.pending...)
		j.base = ack
	case ack > j.base:
		n := min(ack-j.base, int64(len(j.pending)))
		for _, r := range j.pending[:n] {
			j.bytes -= len(r.Content)
		}
		j.pending = j.pending[n:]
		j.base += n
	}
	return lost
}

const lostRow = "(log line lost by the forge)"

// lag is how many rows wait for the forge.
func (j *journal) lag() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// full reports whether too many rows, or too many bytes, wait.
func (j *journal) full() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending) >= maxPending || j.bytes >= maxPendingBytes
}

// waitRoom blocks while too many rows or bytes wait for the forge.
func (j *journal) waitRoom(ctx context.Context) error {
	for j.full() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.room:
		}
	}
	return nil
}
