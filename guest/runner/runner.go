package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/guest/mask"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Exit codes of `solstice-guest run`. They must stay equal to the task
// exit codes in driver/exitcode, which the driver passes on to Nomad; the
// guest keeps its own copy so that it does not depend on driver code.
const (
	ExitSuccess        = 0 // the job succeeded
	ExitJobFailed      = 1 // a step failed the job (or the job timed out)
	ExitCancelled      = 2 // the job was cancelled
	ExitInfrastructure = 3 // the agent could not run the job
)

// Defaults of the job-level limits (GitHub's).
const (
	DefaultJobTimeout    = 360 * time.Minute
	DefaultCancelTimeout = 5 * time.Minute
)

// Options configure a Job.
type Options struct {
	Layout       Layout
	Events       *events.Writer
	Masker       *mask.Masker      // the Writer's masker; the job adds secrets to it
	Secrets      map[string]string // secret values by name
	AgentVersion string
	Environ      []string // the environment steps inherit; nil means os.Environ()
	Timing       Timing
}

// Timing holds the runner's grace periods; zero fields take the defaults
// of GitHub's ProcessInvoker. Tests shorten them.
type Timing struct {
	Interrupt time.Duration // after SIGINT, before SIGTERM (7.5 s)
	Terminate time.Duration // after SIGTERM, before SIGKILL (2.5 s)
	Drain     time.Duration // reading output after the shell exited (5 s)
}

func (t Timing) withDefaults() Timing {
	if t.Interrupt <= 0 {
		t.Interrupt = 7500 * time.Millisecond
	}
	if t.Terminate <= 0 {
		t.Terminate = 2500 * time.Millisecond
	}
	if t.Drain <= 0 {
		t.Drain = 5 * time.Second
	}
	return t
}

// Result is how a job ended.
type Result struct {
	Conclusion string // events.Success, Failure or Cancelled; "" if Err
	Err        error  // the agent could not run the job
}

// ExitCode maps the result to the agent's exit code.
func (r Result) ExitCode() int {
	switch {
	case r.Err != nil:
		return ExitInfrastructure
	case r.Conclusion == contract.Success:
		return ExitSuccess
	case r.Conclusion == contract.Cancelled:
		return ExitCancelled
	default:
		return ExitJobFailed
	}
}

// Job runs one plan. Create it with New, then call Run once; Cancel may be
// called from any goroutine.
type Job struct {
	plan      *contract.Plan
	layout    Layout
	workspace string
	ew        *events.Writer
	masker    *mask.Masker
	timing    Timing
	version   string

	github      *expr.Object          // the plan's github context with the agent's additions
	eventJSON   []byte                // github.event as the plan had it
	planCtx     map[string]expr.Value // matrix, needs, vars, inputs, strategy
	secrets     map[string]string
	runnerCtx   map[string]string
	baseEnv     []string
	stepDebug   bool
	runnerDebug bool

	mu          sync.Mutex
	env         *envVars // job env and GITHUB_ENV writes (the runner's Global.EnvironmentVariables)
	prependPath []string // GITHUB_PATH entries, oldest first
	stepsCtx    map[string]any
	failed      bool // a step concluded failure (or outputs failed)
	cancelled   bool
	timedOut    bool
	cancelBy    time.Time // deadline for steps that run after a cancel
	cancelCh    chan struct{}
	groups      []int // process groups started, for the orphan clean-up
	actionNames map[string]int
	cacheSaves  []cacheSave // actions/cache saves for the end of the job
	emitErr     error

	endMu sync.Mutex // held by the job timer while it reports, so nothing follows job_finished
	ended bool
}

// New prepares a job. Secrets are registered with the masker at once, so
// nothing reported afterwards can leak them.
func New(p *contract.Plan, opt Options) (*Job, error) {
	if opt.Events == nil || opt.Masker == nil {
		return nil, errors.New("runner: Events and Masker are required")
	}
	j := &Job{
		plan: p, layout: opt.Layout, ew: opt.Events, masker: opt.Masker,
		timing: opt.Timing.withDefaults(), version: opt.AgentVersion,
		secrets: map[string]string{}, env: &envVars{}, stepsCtx: map[string]any{},
		cancelCh: make(chan struct{}), actionNames: map[string]int{}, baseEnv: opt.Environ,
	}
	if j.baseEnv == nil {
		j.baseEnv = os.Environ()
	}
	if err := j.loadContexts(); err != nil {
		return nil, err
	}
	j.loadSecrets(opt.Secrets)
	j.applyGuest()
	j.workspace = j.layout.Workspace(stringProp(j.github, "repository"))
	j.initRunnerContext()
	j.initGitHubContext()
	return j, nil
}

// Cancel cancels the job: the running step is cancelled unless its
// condition holds for a cancelled job, later steps run only if their
// condition says so, and the job concludes cancelled.
func (j *Job) Cancel() { j.cancel(false) }

func (j *Job) cancel(timeout bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancelled {
		return
	}
	j.cancelled, j.timedOut = true, timeout
	j.cancelBy = time.Now().Add(minutes(j.plan.CancelTimeoutMinutes, DefaultCancelTimeout))
	close(j.cancelCh)
}

// Run runs the job to the end and reports how it ended. Everything that
// happens is in the event stream.
func (j *Job) Run() Result {
	start := time.Now()
	if err := j.layout.prepare(j.workspace); err != nil {
		return j.infraError(fmt.Errorf("prepare directories: %w", err))
	}
	if err := j.writeEventFile(); err != nil {
		return j.infraError(err)
	}
	j.emit(contract.Event{Type: contract.TypeJobStarted, Agent: j.version, Steps: len(j.plan.Steps),
		Job: &contract.Job{ID: j.plan.Job.ID, Name: j.plan.Job.Name, Workflow: j.plan.Job.Workflow}})
	timer := j.startJobTimer()
	defer timer.Stop()
	setupOK := j.evaluateJobEnv()
	for i := range j.plan.Steps {
		j.runStep(i, setupOK)
	}
	j.postCacheSaves()
	j.endMu.Lock()
	j.ended = true
	j.endMu.Unlock()
	j.emit(contract.Event{Type: contract.TypeOutputs, Outputs: j.jobOutputs()})
	j.killOrphans()
	conclusion := j.conclusion()
	j.emit(contract.Event{Type: contract.TypeJobFinished, Conclusion: conclusion, DurationMS: time.Since(start).Milliseconds()})
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.emitErr != nil {
		return Result{Err: j.emitErr}
	}
	return Result{Conclusion: conclusion}
}

func (j *Job) startJobTimer() *time.Timer {
	limit := minutes(j.plan.TimeoutMinutes, DefaultJobTimeout)
	return time.AfterFunc(limit, func() {
		j.endMu.Lock()
		defer j.endMu.Unlock()
		if j.ended {
			return
		}
		j.errorLine(contract.JobLevel, fmt.Sprintf("The job has exceeded the maximum execution time of %s minutes.", formatMinutes(limit)))
		j.cancel(true)
	})
}

func (j *Job) conclusion() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.timedOut:
		return contract.Failure
	case j.cancelled:
		return contract.Cancelled
	case j.failed:
		return contract.Failure
	}
	return contract.Success
}

// status is the job status the expression status functions see.
func (j *Job) status() expr.JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.cancelled:
		return expr.JobCancelled
	case j.failed:
		return expr.JobFailed
	}
	return expr.JobSucceeded
}

func (j *Job) infraError(err error) Result {
	j.emit(contract.Event{Type: contract.TypeInfraError, Message: err.Error()})
	return Result{Err: err}
}

// emit writes an event. If the stream cannot be written any more the job
// cannot report anything: it is cancelled and ends as an infrastructure
// failure.
func (j *Job) emit(ev contract.Event) {
	if _, err := j.ew.Emit(ev); err != nil {
		j.mu.Lock()
		first := j.emitErr == nil
		if first {
			j.emitErr = err
		}
		j.mu.Unlock()
		if first {
			j.Cancel()
		}
	}
}

func (j *Job) log(step int, stream, line string) {
	j.emit(contract.Event{Type: contract.TypeLog, Step: step, Stream: stream, Line: line})
}

func (j *Job) system(step int, line string) { j.log(step, contract.System, line) }

func (j *Job) errorLine(step int, msg string) { j.issue(step, contract.KindError, msg, nil) }

func (j *Job) warning(step int, msg string) { j.issue(step, contract.KindWarning, msg, nil) }

func (j *Job) debug(step int, msg string) {
	if j.stepDebug {
		for _, line := range splitLines(msg) {
			j.emit(contract.Event{Type: contract.TypeLog, Step: step, Stream: contract.System, Kind: contract.KindDebug, Line: "Debug: " + line})
		}
	}
}

// minutes converts a plan's minutes (0 meaning the default) to a duration.
func minutes(m float64, def time.Duration) time.Duration {
	if m <= 0 {
		return def
	}
	return time.Duration(m * float64(time.Minute))
}

func formatMinutes(d time.Duration) string {
	return strconv.FormatFloat(d.Minutes(), 'f', -1, 64)
}
