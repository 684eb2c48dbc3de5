package githubfake

import (
	"context"
	"errors"
	"sort"
	"time"
)

// ErrJobAbandoned is returned by Job.Wait when the job's lock expired
// because no renewjob arrived before lockedUntil.
var ErrJobAbandoned = errors.New("githubfake: job abandoned: lock expired without renewjob")

// Job is one queued job. Its fields are guarded by the Server's mutex.
type Job struct {
	s    *Server
	spec JobSpec

	planID, jobID, timelineID string
	requestID                 int64
	runID                     int64 // github.run_id: the first job's request id
	runnerRequestID           string
	billingOwnerID            string
	token                     string // job token (SystemVssConnection AccessToken)
	steps                     []Step // spec steps with IDs filled in

	runner          *runner
	acked           bool
	acquired        bool
	completed       bool
	expired         bool
	cancelRequested bool
	lockedUntil     time.Time
	lockTimer       *time.Timer
	lastChangeOrder int64
	stepState       map[string]*StepState

	acquiredCh chan struct{}
	done       chan struct{}
	err        error
	result     Result
}

// Result is everything the fake recorded about a job.
type Result struct {
	Runner          string // name of the runner the job was assigned to
	Conclusion      string // completejob conclusion, e.g. "succeeded"
	Outputs         map[string]Variable
	StepResults     []StepResult // completejob stepResults, as sent
	Annotations     []Annotation // completejob job-level annotations
	StepUpdates     []StepsUpdate
	Steps           []StepState    // final state per external_id, by number
	StepLogs        map[string]Log // by step external_id (sealed + metadata)
	JobLog          *Log
	StepSummaries   map[string]string // by step external_id
	Feed            []FeedBatch
	AcquiredAt      time.Time
	Renewals        []time.Time
	CompletedAt     time.Time
	CancelRequested bool
	Expired         bool
}

// Variable is a job variable or output ({value, isSecret}).
type Variable struct {
	Value    string
	IsSecret bool
}

// StepState is the latest WorkflowStepsUpdate state of one step.
type StepState struct {
	ExternalID  string
	Number      int
	Name        string
	Status      int // 0 unknown, 3 in_progress, 5 pending, 6 completed
	Conclusion  int // 0 unknown, 2 success, 3 failure, 4 cancelled, 7 skipped
	StartedAt   string
	CompletedAt string
}

// StepsUpdate is one accepted WorkflowStepsUpdate call.
type StepsUpdate struct {
	ChangeOrder int64
	Steps       []StepState
}

// StepResult is one completejob stepResults entry.
type StepResult struct {
	ExternalID  string
	Number      int
	Name        string
	Status      string // camelCase TimelineRecordState, e.g. "completed"
	Conclusion  string // camelCase TaskResult, e.g. "succeeded"
	StartedAt   string
	CompletedAt string
	Annotations []Annotation
}

// Annotation is a completejob annotation.
type Annotation struct {
	Level     string // "unknown", "notice", "warning", "failure"
	Message   string
	Title     string
	Path      string
	StartLine int64
	EndLine   int64
}

// Log is an uploaded, sealed log blob and its metadata line count.
type Log struct {
	Text      string
	LineCount int64
}

// FeedBatch is one live-console websocket message.
type FeedBatch struct {
	StepID    string
	StartLine int64 // 0 when absent
	Lines     []string
}

// ID is the job's jobId (a GUID).
func (j *Job) ID() string { return j.jobID }

// GitHubToken is the job's GITHUB_TOKEN (system.github.token and
// github_token in its message).
func (j *Job) GitHubToken() string { return "ghs_jobtoken_" + j.jobID[:8] }

// AccessToken is the job's access token (SystemVssConnection), which
// actions get as ACTIONS_RUNTIME_TOKEN for the results service.
func (j *Job) AccessToken() string { return j.token }

// PlanID is the job's plan id (workflow_run_backend_id).
func (j *Job) PlanID() string { return j.planID }

// StepIDs are the steps' ids in the job message, in order.
func (j *Job) StepIDs() []string {
	ids := make([]string, len(j.steps))
	for i, st := range j.steps {
		ids[i] = st.ID
	}
	return ids
}

// Acquired is closed when a runner has acquired the job.
func (j *Job) Acquired() <-chan struct{} { return j.acquiredCh }

// Done is closed when the job completed, expired or was withdrawn.
func (j *Job) Done() <-chan struct{} { return j.done }

// Wait blocks until completejob (or lock expiry, or Close) and returns
// the recorded result. The error is ErrJobAbandoned if the lock expired.
func (j *Job) Wait(ctx context.Context) (*Result, error) {
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.Snapshot(), ctx.Err()
	}
	res := j.Snapshot()
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	return res, j.err
}

// Snapshot returns a copy of what was recorded so far.
func (j *Job) Snapshot() *Result {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	r := j.result
	r.Outputs = cloneMap(r.Outputs)
	r.StepLogs = cloneMap(r.StepLogs)
	r.StepSummaries = cloneMap(r.StepSummaries)
	r.StepResults = append([]StepResult(nil), r.StepResults...)
	r.StepUpdates = append([]StepsUpdate(nil), r.StepUpdates...)
	r.Feed = append([]FeedBatch(nil), r.Feed...)
	r.Renewals = append([]time.Time(nil), r.Renewals...)
	r.CancelRequested = j.cancelRequested
	r.Expired = j.expired
	r.Steps = nil
	for _, st := range j.stepState {
		r.Steps = append(r.Steps, *st)
	}
	sort.Slice(r.Steps, func(a, b int) bool { return r.Steps[a].Number < r.Steps[b].Number })
	return &r
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// QueueJob queues a job; it is delivered to the first idle session of a
// runner that has all spec.Labels.
func (s *Server) QueueJob(spec JobSpec) *Job {
	spec.setDefaults()
	j := &Job{
		s: s, spec: spec,
		planID: newGUID(), jobID: newGUID(), timelineID: newGUID(),
		runnerRequestID: newGUID(),
		billingOwnerID:  "",
		stepState:       map[string]*StepState{},
		acquiredCh:      make(chan struct{}),
		done:            make(chan struct{}),
	}
	j.steps = append([]Step(nil), spec.Steps...)
	for i := range j.steps {
		if j.steps[i].ID == "" {
			j.steps[i].ID = newGUID()
		}
	}
	if spec.Run != nil {
		j.planID = spec.Run.planID
	}
	j.token = s.jobToken(j)
	j.result.StepLogs = map[string]Log{}
	j.result.StepSummaries = map[string]string{}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	j.requestID, j.runID = s.nextID, s.nextID
	if spec.Run != nil {
		j.runID = spec.Run.runID
	}
	s.jobs = append(s.jobs, j)
	s.jobsByID[j.jobID] = j
	s.notifyLocked()
	return j
}

func (j *Job) assignLocked(rn *runner) {
	j.runner = rn
	rn.current = j
	rn.jobsTaken++
	j.result.Runner = rn.name
}

func (j *Job) isDone() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// finishLocked ends the job once; later calls are no-ops.
func (j *Job) finishLocked(err error) {
	if j.isDone() {
		return
	}
	j.err = err
	if j.lockTimer != nil {
		j.lockTimer.Stop()
	}
	if j.runner != nil && j.runner.current == j {
		j.runner.current = nil
	}
	close(j.done)
}

// startLockLocked (re)arms the lock-expiry timer at now+LockDuration.
func (s *Server) startLockLocked(j *Job) {
	j.lockedUntil = time.Now().Add(s.opts.LockDuration)
	if j.lockTimer != nil {
		j.lockTimer.Stop()
	}
	j.lockTimer = time.AfterFunc(s.opts.LockDuration, func() { s.expireJob(j) })
}

func (s *Server) expireJob(j *Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.completed || j.isDone() || time.Now().Before(j.lockedUntil) {
		return
	}
	j.expired = true
	s.rejections = append(s.rejections, Rejection{
		Time: time.Now(), Method: "-", Path: "lock " + j.jobID, Status: 0,
		Reason: "job abandoned: no renewjob before lockedUntil " + j.lockedUntil.UTC().Format(time.RFC3339Nano),
	})
	j.finishLocked(ErrJobAbandoned)
	s.notifyLocked()
}
