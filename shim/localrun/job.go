package localrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/translate"
	"github.com/solstice-ci/solstice/shim/workflow"
)

// result is how one job run went.
type result struct {
	run        workflow.Run
	label      string
	conclusion string // success, failure, cancelled, skipped
	code       int
	note       string
	outputs    map[string]string
	started    time.Time
	took       time.Duration
}

func (res *result) finish(conclusion string, code int, note string) {
	res.conclusion, res.code, res.note = conclusion, code, note
	if !res.started.IsZero() {
		res.took = time.Since(res.started)
	}
}

// start decides whether a run runs and dispatches it; false means it is
// already settled (skipped or failed before dispatch).
func (r *runner) start(ctx context.Context, res *result) (*nomad.Job, bool) {
	needs, status := r.needs(res.run)
	run, err := r.shouldRun(res.run, needs, status, ctx)
	switch {
	case err != nil:
		res.finish(contract.Failure, contract.ExitJobFailed, err.Error())
		r.print.job(res.run.Name, "✗ %s", err)
		return nil, false
	case !run:
		res.finish(contract.Skipped, contract.ExitSuccess, "a job it needs did not succeed")
		r.print.job(res.run.Name, "- skipped: a job it needs did not succeed")
		return nil, false
	}
	res.started = time.Now()
	job, err := r.dispatch(ctx, res, needs)
	if err != nil {
		res.finish(contract.Failure, contract.ExitInfrastructure, err.Error())
		r.print.job(res.run.Name, "✗ %s", err)
		return nil, false
	}
	return job, true
}

// needs builds the needs context from the runs already finished, and the
// job status the implicit success() of a job's if: looks at.
func (r *runner) needs(run workflow.Run) (map[string]translate.Need, expr.JobStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	status := expr.JobSucceeded
	needs := map[string]translate.Need{}
	for _, id := range run.Needs {
		n := translate.Need{Result: contract.Success, Outputs: map[string]string{}}
		for _, res := range r.results[id] {
			for k, v := range res.outputs {
				n.Outputs[k] = v // like GitHub: a matrix job's last run wins
			}
			if res.conclusion != contract.Success {
				n.Result = res.conclusion
			}
		}
		switch n.Result {
		case contract.Failure, contract.Skipped:
			status = expr.JobFailed
		case contract.Cancelled:
			status = expr.JobCancelled
		}
		needs[id] = n
	}
	return needs, status
}

// shouldRun evaluates the job's if: as GitHub's server does, with the
// needs context and the implicit success().
func (r *runner) shouldRun(run workflow.Run, needs map[string]translate.Need, status expr.JobStatus, ctx context.Context) (bool, error) {
	if ctx.Err() != nil {
		status = expr.JobCancelled
	}
	ctxs := map[string]expr.Value{"needs": toValue(needs), "github": toValue(r.github(run)), "vars": toValue(r.opts.Vars), "inputs": nil}
	ok, err := expr.EvaluateCondition(run.If, &expr.Env{Contexts: ctxs, Status: status})
	if err != nil {
		return false, fmt.Errorf("job %q: if: %w", run.JobID, err)
	}
	return ok, nil
}

func (r *runner) dispatch(ctx context.Context, res *result, needs map[string]translate.Need) (*nomad.Job, error) {
	p, err := translate.Plan(translate.Input{
		Workflow: r.wf, Run: res.run, GitHub: r.github(res.run), Vars: r.opts.Vars,
		Needs: needs, Secrets: slices.Sorted(maps.Keys(r.opts.Secrets)),
		Checkout: &contract.Checkout{SHA: r.snap.Commit, Ref: r.snap.Ref, Bundle: contract.GuestRoot + "/repo.bundle"},
	})
	if err != nil {
		return nil, err
	}
	p.Debug = r.opts.Debug
	payload, err := contract.EncodePayload(p)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return r.d.Dispatch(ctx, nomad.Request{
		Label: res.label, Plan: payload, Secrets: r.opts.Secrets, BundleURL: r.bundleURL, Debug: p.Debug != nil,
		Meta: nomad.Meta{Forge: "local", Instance: host, TaskID: randomID(), Repository: filepath.Base(r.snap.Repo), JobName: res.run.Name},
	})
}

// github is the github context of a local run.
func (r *runner) github(run workflow.Run) map[string]any {
	user := os.Getenv("USER")
	return map[string]any{
		"repository": filepath.Base(r.snap.Repo), "sha": r.snap.Commit, "ref": r.snap.Ref,
		"event_name": "workflow_dispatch", "actor": user, "triggering_actor": user,
		"workflow": r.wf.Name, "job": run.JobID, "run_id": "1", "run_number": "1", "run_attempt": "1",
		"server_url": "", "api_url": "",
	}
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
