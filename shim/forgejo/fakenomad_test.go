package forgejo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// fakeNomad is Nomad as the runner sees it. Jobs stay queued until the test
// (or the auto script) places them; their events are whatever the test
// appends.
type fakeNomad struct {
	mu       sync.Mutex
	catalog  map[string]string
	jobs     map[string]*fakeJob
	order    []string
	refuse   error // Dispatch fails with it
	down     bool  // reads fail: Nomad is unreachable
	changed  chan struct{}
	auto     func(n *fakeNomad, id string) // run for every dispatched job
	statuses int
}

type fakeJob struct {
	job       *nomad.Job
	req       nomad.Request
	stage     nomad.Stage
	exit      int
	problem   string
	submitted time.Time
	placed    time.Time
	data      []byte // events.jsonl
	seq       int64
	cancelled bool
	finished  bool // secrets removed
}

func newFakeNomad() *fakeNomad {
	return &fakeNomad{
		catalog: map[string]string{"solstice-test": "solstice-test", "debian-test": "solstice-test"},
		jobs:    map[string]*fakeJob{}, changed: make(chan struct{}),
	}
}

// touch wakes followers; call with mu held.
func (n *fakeNomad) touch() {
	close(n.changed)
	n.changed = make(chan struct{})
}

var errNomadDown = errors.New("dial tcp 127.0.0.1:4646: connection refused")

func (n *fakeNomad) Catalog(context.Context) (map[string]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, errNomadDown
	}
	return n.catalog, nil
}

func (n *fakeNomad) Dispatch(_ context.Context, req nomad.Request) (*nomad.Job, error) {
	n.mu.Lock()
	if n.refuse != nil {
		n.mu.Unlock()
		return nil, n.refuse
	}
	id := fmt.Sprintf("solstice-%s/dispatch-%d", req.Label, len(n.order)+1)
	j := &fakeJob{job: &nomad.Job{ID: id, Label: req.Label, Meta: req.Meta, SecretsKey: "k" + id}, req: req, submitted: time.Now()}
	n.jobs[id] = j
	n.order = append(n.order, id)
	auto := n.auto
	n.mu.Unlock()
	if auto != nil {
		go auto(n, id)
	}
	return j.job, nil
}

func (n *fakeNomad) Status(_ context.Context, job *nomad.Job) (nomad.Status, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.statuses++
	if n.down {
		return nomad.Status{}, errNomadDown
	}
	j := n.jobs[job.ID]
	if j == nil {
		return nomad.Status{}, fmt.Errorf("job %s: not found", job.ID)
	}
	st := nomad.Status{Stage: j.stage, ExitCode: j.exit, Problem: j.problem, Submitted: j.submitted, Placed: j.placed}
	if !j.placed.IsZero() {
		st.AllocID, st.Node, st.Boot = "alloc-"+job.ID, "node-1", "image solstice-test under tcg"
	}
	return st, nil
}

func (n *fakeNomad) Follow(ctx context.Context, st nomad.Status, from int64, fn func([]byte, int64) error) error {
	id := st.AllocID[len("alloc-"):]
	off := from
	for {
		n.mu.Lock()
		data := n.jobs[id].data[off:]
		wait := n.changed
		n.mu.Unlock()
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			off += int64(i + 1)
			if err := fn(data[:i], off); err != nil {
				if errors.Is(err, contract.ErrStop) {
					return nil
				}
				return err
			}
			data = data[i+1:]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

func (n *fakeNomad) Cancel(_ context.Context, job *nomad.Job) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	j := n.jobs[job.ID]
	if j.cancelled || j.stage == nomad.Finished {
		j.cancelled = true
		return nil
	}
	j.cancelled = true
	if j.placed.IsZero() {
		j.stage, j.exit, j.problem = nomad.Finished, contract.ExitCancelled, "cancelled before it was placed"
	} else {
		// The driver cancels the guest, which ends the job cancelled.
		n.appendLocked(j, contract.Event{Type: contract.TypeLog, Step: contract.JobLevel, Stream: contract.System, Line: "The job was cancelled."})
		n.appendLocked(j, contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Cancelled, DurationMS: 1000})
		j.stage, j.exit = nomad.Finished, contract.ExitCancelled
	}
	n.touch()
	return nil
}

func (n *fakeNomad) Finish(_ context.Context, job *nomad.Job) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.jobs[job.ID].finished = true
	return nil
}

func (n *fakeNomad) InFlight(_ context.Context, forge, instance string) ([]*nomad.Job, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, errNomadDown
	}
	var out []*nomad.Job
	for _, id := range n.order {
		j := n.jobs[id]
		if !j.finished && j.job.Meta.Forge == forge && j.job.Meta.Instance == instance {
			out = append(out, j.job)
		}
	}
	return out, nil
}

// place puts a queued job on a node; it starts booting.
func (n *fakeNomad) place(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	j := n.jobs[id]
	if j.stage == nomad.Queued {
		j.stage, j.placed = nomad.Running, time.Now()
	}
	n.touch()
}

// emit appends events with the next sequence numbers.
func (n *fakeNomad) emit(id string, evs ...contract.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ev := range evs {
		n.appendLocked(n.jobs[id], ev)
	}
	n.touch()
}

func (n *fakeNomad) appendLocked(j *fakeJob, ev contract.Event) {
	if j.stage == nomad.Finished && j.cancelled {
		return
	}
	j.seq++
	ev.Seq = j.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	j.data = append(j.data, contract.MarshalEvent(&ev)...)
}

// end ends the job's task with an exit code.
func (n *fakeNomad) end(id string, code int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	j := n.jobs[id]
	if !j.cancelled {
		j.stage, j.exit = nomad.Finished, code
	}
	n.touch()
}

func (n *fakeNomad) job(i int) *fakeJob {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i >= len(n.order) {
		return nil
	}
	return n.jobs[n.order[i]]
}

func (n *fakeNomad) dispatched() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.order)
}

func (n *fakeNomad) state(id string) fakeJob {
	n.mu.Lock()
	defer n.mu.Unlock()
	return *n.jobs[id]
}

func (n *fakeNomad) setDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
}

// script is a job the guest runs: steps, each with log lines and an exit
// code, then outputs.
type script struct {
	steps   []scriptStep
	outputs map[string]string
}

type scriptStep struct {
	name  string
	lines []string
	exit  int
	skip  bool
}

// events renders the whole stream the guest would write for s.
func (s script) events() []contract.Event {
	evs := []contract.Event{{Type: contract.TypeJobStarted, Job: &contract.Job{ID: "build", Name: "build"}, Agent: "test", Steps: len(s.steps)}}
	failed := false
	for i, st := range s.steps {
		evs = append(evs, contract.Event{Type: contract.TypeStepStarted, Step: i, Name: st.name})
		if st.skip {
			evs = append(evs, contract.Event{Type: contract.TypeStepFinished, Step: i, Outcome: contract.Skipped, Conclusion: contract.Skipped})
			continue
		}
		for _, l := range st.lines {
			evs = append(evs, contract.Event{Type: contract.TypeLog, Step: i, Stream: contract.Stdout, Line: l})
		}
		code := st.exit
		c := contract.Success
		if code != 0 {
			c, failed = contract.Failure, true
		}
		evs = append(evs, contract.Event{Type: contract.TypeStepFinished, Step: i, Outcome: c, Conclusion: c, ExitCode: &code, DurationMS: 10})
	}
	evs = append(evs, contract.Event{Type: contract.TypeOutputs, Outputs: s.outputs})
	c := contract.Success
	if failed {
		c = contract.Failure
	}
	return append(evs, contract.Event{Type: contract.TypeJobFinished, Conclusion: c, DurationMS: 1234})
}

// play places the job, writes its events with a pause every few, and ends
// the task with the matching exit code.
func (s script) play(pause time.Duration) func(n *fakeNomad, id string) {
	return func(n *fakeNomad, id string) {
		time.Sleep(pause)
		n.place(id)
		evs := s.events()
		for i := 0; i < len(evs); i += 50 {
			n.emit(id, evs[i:min(i+50, len(evs))]...)
			time.Sleep(pause)
		}
		code := contract.ExitSuccess
		if evs[len(evs)-1].Conclusion == contract.Failure {
			code = contract.ExitJobFailed
		}
		n.end(id, code)
	}
}
