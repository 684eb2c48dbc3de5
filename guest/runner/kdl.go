package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/guest/kdl/workflow"
	"github.com/solstice-ci/solstice/internal/contract"
)

var (
	errKDLJobTimeout  = errors.New("KDL job timed out")
	errKDLStepTimeout = errors.New("KDL step timed out")
)

// runKDL runs a job of a legacy .solstice/workflow.kdl file as one plan
// step, so that forges see the steps the plan announced. The file is read
// from the workspace (so a checkout step must come first). The job's setup
// scripts run first, each as `sh -e PATH` (paths relative to the
// workspace), then its steps as run steps with the default shell (bash
// -e, else sh -e). Each setup script and step is introduced by a system
// line "KDL setup: PATH" or "KDL step: NAME" followed by its output, and
// gets fresh command files (GITHUB_ENV, GITHUB_OUTPUT… work as in run
// steps). The environment is the plan step's env context plus the KDL
// workflow's, job's and step's env, in that order; the working directory
// is the step's workdir, else the job's, joined onto the workspace; the
// job's timeout bounds the whole KDL job and a step's timeout that step.
// The first failing script fails the plan step; the rest are skipped.
// KDL scripts are run as written: ${{ }} is not expanded in them, and the
// job's runs_on is ignored (the plan chose the VM).
func (j *Job) runKDL(ctx context.Context, s *stepRun) {
	job, wf, err := j.loadKDL(s)
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the KDL workflow could not be loaded")
		return
	}
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, job.Timeout, errKDLJobTimeout)
		defer cancel()
	}
	env := map[string]string{}
	maps.Copy(env, wf.Env)
	maps.Copy(env, job.Env)
	for _, p := range job.Setup {
		j.runKDLScript(ctx, s, kdlScript{label: "KDL setup: " + p, setup: p, env: env, workdir: job.Workdir})
		if !going(ctx, s) {
			break
		}
	}
	for _, st := range job.Steps {
		if !going(ctx, s) {
			j.system(s.index, fmt.Sprintf("Skipping KDL step %q: an earlier script failed or the step was stopped", kdlName(st)))
			continue
		}
		stepEnv := maps.Clone(env)
		maps.Copy(stepEnv, st.Env)
		wd := st.Workdir
		if wd == "" {
			wd = job.Workdir
		}
		j.runKDLScript(ctx, s, kdlScript{label: "KDL step: " + kdlName(st), run: st.Run, env: stepEnv, workdir: wd, timeout: st.Timeout})
	}
	if context.Cause(ctx) == errKDLJobTimeout {
		j.errorLine(s.index, fmt.Sprintf("The KDL job '%s' has timed out after %s.", job.ID, job.Timeout))
		s.fail("the KDL job timed out")
	}
}

// going reports whether the KDL job should go on.
func going(ctx context.Context, s *stepRun) bool {
	return s.result == contract.Success && ctx.Err() == nil
}

func kdlName(st workflow.Step) string {
	if st.Name != "" {
		return st.Name
	}
	return firstLine(st.Run)
}

func (j *Job) loadKDL(s *stepRun) (*workflow.Job, *workflow.Workflow, error) {
	ref := s.step.KDL
	path, err := expr.Interpolate(ref.Path, j.exprEnv(s, s.env))
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(j.inWorkspace(path))
	if err != nil {
		return nil, nil, fmt.Errorf("open the KDL workflow: %w", err)
	}
	defer f.Close()
	wf, err := workflow.Parse(f, path)
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	for i := range wf.Jobs {
		if wf.Jobs[i].ID == ref.Job {
			return &wf.Jobs[i], wf, nil
		}
		ids = append(ids, wf.Jobs[i].ID)
	}
	return nil, nil, fmt.Errorf("%s has no job %q (its jobs: %s)", path, ref.Job, strings.Join(ids, ", "))
}

// kdlScript is a setup script or a step of a KDL job.
type kdlScript struct {
	label   string
	setup   string // path of a setup script, or
	run     string // the step's script
	env     map[string]string
	workdir string
	timeout time.Duration
}

// runKDLScript runs one KDL script as a sub-step of s.
func (j *Job) runKDLScript(ctx context.Context, s *stepRun, k kdlScript) {
	j.system(s.index, k.label)
	files, err := j.newFileCommands()
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the command files could not be created")
		return
	}
	sub := *s
	sub.files = files
	sub.env = j.globalEnv() // GITHUB_ENV writes of earlier scripts count
	maps.Copy(sub.env, s.stepEnv)
	maps.Copy(sub.env, k.env)
	if k.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, k.timeout, errKDLStepTimeout)
		defer cancel()
	}
	if k.setup != "" {
		j.runSetup(ctx, &sub, k)
	} else {
		j.runScript(ctx, &sub, script{text: k.run, workdir: j.inWorkspace(k.workdir)})
	}
	j.processFileCommands(&sub, files)
	if context.Cause(ctx) == errKDLStepTimeout {
		j.errorLine(s.index, fmt.Sprintf("The KDL step '%s' has timed out after %s.", strings.TrimPrefix(k.label, "KDL step: "), k.timeout))
		s.fail("a KDL step timed out")
	}
	if s.commandFailed && s.result == contract.Success {
		s.fail("a workflow command or file command failed")
	}
}

// runSetup runs a setup script with `sh -e`.
func (j *Job) runSetup(ctx context.Context, s *stepRun, k kdlScript) {
	sh, err := which("sh", j.searchPath())
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail(err.Error())
		return
	}
	spec := procSpec{path: sh, args: []string{"-e", j.inWorkspace(k.setup)}, dir: j.inWorkspace(k.workdir), env: j.processEnv(s, nil)}
	code, err := j.runProcess(ctx, spec, j.newOutput(s))
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the setup script could not be started")
		return
	}
	s.exitCode = &code
	if code != 0 && ctx.Err() == nil {
		j.errorLine(s.index, fmt.Sprintf("Process completed with exit code %d.", code))
		s.fail(fmt.Sprintf("exit code %d", code))
	}
}
