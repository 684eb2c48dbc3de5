package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Why a step's context ended.
var (
	errStepTimeout    = errors.New("step timed out")
	errJobCancelled   = errors.New("job cancelled")
	errCancelDeadline = errors.New("cancel timeout reached")
)

// stepRun is one step while it runs. KDL sub-steps are shallow copies
// with their own env and command files; they share the state.
type stepRun struct {
	index      int
	step       *contract.Step
	name       string            // display name
	actionName string            // github.action
	stepEnv    map[string]string // the step's own env, evaluated
	env        map[string]string // the env context: job env, GITHUB_ENV, step env
	files      *fileCommands
	*stepState
}

// stepState is what the step's processes and commands produce.
type stepState struct {
	mu            sync.Mutex
	outputs       map[string]string
	commandFailed bool   // a workflow or file command failed
	result        string // events.Success, Failure, Cancelled or Skipped
	exitCode      *int
	reason        string
}

func (s *stepState) setOutput(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outputs[k] = v
}

func (s *stepState) fail(reason string) {
	s.result = contract.Failure
	if s.reason == "" {
		s.reason = reason
	}
}

// runStep runs (or skips) plan step i and reports it. setupOK is false
// when the job failed before its first step.
func (j *Job) runStep(i int, setupOK bool) {
	st := &j.plan.Steps[i]
	s := &stepRun{index: i, step: st, actionName: j.actionName(st), stepState: &stepState{outputs: map[string]string{}}}
	start := time.Now()
	envErr := j.prepareStepEnv(s)
	s.name = j.displayName(s)
	j.emit(contract.Event{Type: contract.TypeStepStarted, Step: i, StepID: st.ID, Name: s.name})
	switch {
	case !setupOK:
		s.result, s.reason = contract.Skipped, "the job failed before its first step"
	case envErr != nil:
		j.errorLine(i, envErr.Error())
		s.fail("the step's env could not be evaluated")
	default:
		j.evaluateAndRun(s)
	}
	outcome, conclusion := s.result, s.result
	if outcome == contract.Failure && j.continueOnError(s) {
		conclusion = contract.Success
	}
	j.recordStep(s, outcome, conclusion)
	j.emit(contract.Event{Type: contract.TypeStepFinished, Step: i, Outcome: outcome, Conclusion: conclusion,
		ExitCode: s.exitCode, DurationMS: time.Since(start).Milliseconds(), Reason: s.reason})
}

// prepareStepEnv builds the env context: the job's, then the step's env
// evaluated against it (StepsRunner).
func (j *Job) prepareStepEnv(s *stepRun) error {
	s.env = j.globalEnv()
	s.stepEnv = map[string]string{}
	ee := j.exprEnv(s, maps.Clone(s.env))
	for _, k := range slices.Sorted(maps.Keys(s.step.Env)) {
		v, err := expr.Interpolate(s.step.Env[k], ee)
		if err != nil {
			return fmt.Errorf("Failed to evaluate env %s: %w", k, err)
		}
		s.stepEnv[k] = v
	}
	maps.Copy(s.env, s.stepEnv)
	return nil
}

// evaluateAndRun decides the step's condition and runs it.
func (j *Job) evaluateAndRun(s *stepRun) {
	run, err := expr.EvaluateCondition(s.step.If, j.exprEnv(s, s.env))
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the condition could not be evaluated")
		return
	}
	if !run {
		s.result, s.reason = contract.Skipped, fmt.Sprintf("the condition %q was false", conditionText(s.step.If))
		return
	}
	if s.step.Run != "" && !j.prepareFiles(s) {
		return
	}
	timeout := j.stepTimeout(s)
	ctx, cancel := j.stepContext(s, timeout)
	defer cancel(nil)
	s.result = contract.Success
	switch {
	case s.step.Uses != "":
		j.runAction(ctx, s)
	case s.step.KDL != nil:
		j.runKDL(ctx, s)
	default:
		j.runRunStep(ctx, s)
	}
	j.settle(ctx, s, timeout)
}

// prepareFiles makes a run step's command files before its context (whose
// watcher reads their paths) exists.
func (j *Job) prepareFiles(s *stepRun) bool {
	files, err := j.newFileCommands()
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the command files could not be created")
		return false
	}
	s.files = files
	return true
}

func conditionText(cond string) string {
	if strings.TrimSpace(cond) == "" {
		return "success()"
	}
	return cond
}

// settle merges how the step's context ended and its command failures into
// its result (TaskResultUtil.MergeTaskResults: cancelled beats failed).
func (j *Job) settle(ctx context.Context, s *stepRun, timeout time.Duration) {
	switch context.Cause(ctx) {
	case errStepTimeout:
		j.errorLine(s.index, fmt.Sprintf("The action '%s' has timed out after %s minutes.", s.name, formatMinutes(timeout)))
		s.fail("timed out")
	case errJobCancelled, errCancelDeadline:
		j.errorLine(s.index, "The operation was canceled.")
		s.result, s.reason = contract.Cancelled, "the job was cancelled"
	}
	if s.commandFailed && s.result == contract.Success {
		s.fail("a workflow command or file command failed")
	}
}

// stepContext returns the context the step runs under: it ends at the
// step's timeout, or when the job is cancelled and the step's condition
// no longer holds, or at the cancel timeout.
func (j *Job) stepContext(s *stepRun, timeout time.Duration) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() { cancel(errStepTimeout) })
		context.AfterFunc(ctx, func() { t.Stop() })
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-j.cancelCh:
		}
		if !j.stillWanted(s) {
			cancel(errJobCancelled)
			return
		}
		t := time.NewTimer(time.Until(j.cancelDeadline()))
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			cancel(errCancelDeadline)
		}
	}()
	return ctx, cancel
}

// stillWanted re-evaluates a running step's condition once the job is
// cancelled: always() steps go on, the others are cancelled.
func (j *Job) stillWanted(s *stepRun) bool {
	ok, err := expr.EvaluateCondition(s.step.If, j.exprEnv(s, s.env))
	if err != nil {
		j.errorLine(s.index, err.Error())
		return false
	}
	return ok
}

func (j *Job) cancelDeadline() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cancelBy
}

// stepTimeout evaluates timeout-minutes; a broken value is reported and
// means no timeout, as in the runner.
func (j *Job) stepTimeout(s *stepRun) time.Duration {
	text := string(s.step.TimeoutMinutes)
	if text == "" {
		return 0
	}
	v, err := expr.EvaluateTemplate(text, j.exprEnv(s, s.env))
	var m float64
	if err == nil {
		m, err = toNumber(v)
	}
	if err != nil || m < 0 {
		j.errorLine(s.index, "An error occurred when attempting to determine the step timeout.")
		if err != nil {
			j.errorLine(s.index, err.Error())
		}
		return 0
	}
	return minutes(m, 0)
}

func toNumber(v expr.Value) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("timeout-minutes: %q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("timeout-minutes: %s is not a number", expr.ToString(v))
}

// continueOnError evaluates continue-on-error for a failed step.
func (j *Job) continueOnError(s *stepRun) bool {
	text := string(s.step.ContinueOnError)
	if text == "" {
		return false
	}
	v, err := expr.EvaluateTemplate(text, j.exprEnv(s, s.env))
	if err == nil {
		switch x := v.(type) {
		case bool:
			return x
		case string:
			if b, perr := strconv.ParseBool(strings.TrimSpace(x)); perr == nil {
				return b
			}
		}
		err = fmt.Errorf("continue-on-error: %q is not a boolean", expr.ToString(v))
	}
	j.errorLine(s.index, "The step failed and an error occurred when attempting to determine whether to continue on error.")
	j.errorLine(s.index, err.Error())
	return false
}

// recordStep updates the steps context and the job's status.
func (j *Job) recordStep(s *stepRun, outcome, conclusion string) {
	s.mu.Lock()
	outputs := maps.Clone(s.outputs)
	s.mu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if s.step.ID != "" {
		j.stepsCtx[s.step.ID] = map[string]any{"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
	}
	if conclusion == contract.Failure {
		j.failed = true
	}
}

// actionName is github.action: the step id, or a generated __run name.
func (j *Job) actionName(st *contract.Step) string {
	if st.ID != "" {
		return st.ID
	}
	base := "__run"
	switch {
	case st.Uses != "":
		base = "__" + strings.ReplaceAll(contract.BuiltinAction(st.Uses), "/", "_")
	case st.KDL != nil:
		base = "__kdl"
	}
	j.actionNames[base]++
	if n := j.actionNames[base]; n > 1 {
		return base + "_" + strconv.Itoa(n)
	}
	return base
}

// displayName expands the step's name, or makes GitHub's default:
// "Run " and the first line of the script (or the action).
func (j *Job) displayName(s *stepRun) string {
	ee := j.exprEnv(s, s.env)
	if s.step.Name != "" {
		if n, err := expr.Interpolate(s.step.Name, ee); err == nil {
			return n
		}
		return s.step.Name
	}
	switch {
	case s.step.Uses != "":
		return "Run " + s.step.Uses
	case s.step.KDL != nil:
		return "Run KDL job " + s.step.KDL.Job
	}
	first := firstLine(s.step.Run)
	if n, err := expr.Interpolate(first, ee); err == nil {
		first = n
	}
	return "Run " + first
}

func firstLine(script string) string {
	script = strings.TrimSpace(script)
	if i := strings.IndexAny(script, "\r\n"); i >= 0 {
		script = script[:i]
	}
	return strings.TrimSpace(script)
}
