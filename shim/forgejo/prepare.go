package forgejo

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"gopkg.in/yaml.v3"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/forge"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/translate"
	"github.com/solstice-ci/solstice/shim/workflow"
)

// ForgeName is the dispatch meta "forge" of every job this shim runs.
const ForgeName = "forgejo"

// prepared is a task made ready to dispatch.
type prepared struct {
	req   nomad.Request
	steps int // number of steps in the payload
}

// unrunnable is a task Solstice cannot run; its lines go to the forge log.
type unrunnable struct {
	lines []string
	steps int // steps in the payload, when it could be counted
}

func (u *unrunnable) Error() string { return strings.Join(u.lines, "; ") }

func refuse(steps int, lines ...string) *unrunnable {
	return &unrunnable{lines: lines, steps: steps}
}

// prepare turns a task into a dispatch request. The error is an
// *unrunnable that says, for the forge log, why the task cannot run.
func prepare(task *runnerv1.Task, catalog map[string]string, instance string, debug *contract.DebugSSH, ca *CacheAccess) (*prepared, error) {
	steps := countSteps(task.WorkflowPayload)
	wf, err := workflow.ParseSingleJob(task.WorkflowPayload)
	if err != nil {
		return nil, refuse(steps, problemLines("The job cannot run on Solstice:", err)...)
	}
	runs, err := wf.Runs()
	if err != nil || len(runs) != 1 {
		if err == nil {
			err = fmt.Errorf("the payload holds %d job runs, want exactly one", len(runs))
		}
		return nil, refuse(steps, problemLines("The job cannot run on Solstice:", err)...)
	}
	run := runs[0]
	label, err := workflow.ResolveLabel(run.RunsOn, catalog)
	if err != nil {
		return nil, refuse(len(run.Steps), "The job cannot run on Solstice: "+err.Error())
	}
	github := githubContext(task)
	secrets := jobSecrets(task)
	p, err := buildPlan(wf, run, task, github, secrets)
	if err != nil {
		return nil, refuse(len(run.Steps), problemLines("The job cannot run on Solstice:", err)...)
	}
	p.Debug = debug
	addResultsURL(p, github)
	if err := ca.grant(p, secrets, forge.Text(github["repository"])); err != nil {
		return nil, refuse(len(run.Steps), "The job cannot run on Solstice: "+err.Error())
	}
	payload, err := encodePlan(p, github)
	if err != nil {
		return nil, refuse(len(run.Steps), "The job cannot run on Solstice: "+err.Error())
	}
	return &prepared{steps: len(run.Steps), req: nomad.Request{
		Label: label, Plan: payload, Secrets: secrets, Debug: debug != nil,
		Meta: nomad.Meta{
			Forge: ForgeName, Instance: instance, TaskID: strconv.FormatInt(task.Id, 10),
			Repository: forge.Text(github["repository"]), Run: forge.Text(github["run_id"]), JobName: run.Name,
		},
	}}, nil
}

// problemLines puts each problem of a workflow error on its own line.
// Positions are left out: they point into the YAML the forge generated
// for the job, not into the user's workflow file.
func problemLines(head string, err error) []string {
	lines := []string{head}
	var errs workflow.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			lines = append(lines, fmt.Sprintf("  %s (%s)", e.Msg, e.Feature))
		}
		return lines
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, "  "+l)
	}
	return lines
}

func buildPlan(wf *workflow.Workflow, run workflow.Run, task *runnerv1.Task, github map[string]any, secrets map[string]string) (*contract.Plan, error) {
	return translate.Plan(translate.Input{
		Workflow: wf, Run: run, GitHub: github,
		Vars: task.Vars, Inputs: inputs(github), Needs: needs(task.Needs), Secrets: slices.Sorted(maps.Keys(secrets)),
		Checkout: forge.Checkout(github),
	})
}

// secretContextKeys are github context keys that hold credentials; they
// never go into a plan (the guest sets github.token from GITHUB_TOKEN).
func secretContextKey(k string) bool {
	return k == "token" || strings.HasSuffix(k, "_token") || strings.HasSuffix(k, "runtime_token")
}

// githubContext is the task's github context without its tokens.
func githubContext(task *runnerv1.Task) map[string]any {
	out := map[string]any{}
	if task.Context == nil {
		return out
	}
	for k, v := range task.Context.AsMap() {
		if !secretContextKey(k) {
			out[k] = v
		}
	}
	return out
}

// inputs are a workflow_dispatch's inputs, from the event.
func inputs(github map[string]any) map[string]any {
	if ev, ok := github["event"].(map[string]any); ok {
		if in, ok := ev["inputs"].(map[string]any); ok {
			return in
		}
	}
	return nil
}

var resultNames = map[runnerv1.Result]string{
	runnerv1.Result_RESULT_SUCCESS:   "success",
	runnerv1.Result_RESULT_FAILURE:   "failure",
	runnerv1.Result_RESULT_CANCELLED: "cancelled",
	runnerv1.Result_RESULT_SKIPPED:   "skipped",
}

func needs(in map[string]*runnerv1.TaskNeed) map[string]translate.Need {
	if len(in) == 0 {
		return nil
	}
	out := map[string]translate.Need{}
	for id, n := range in {
		outputs := n.GetOutputs()
		if outputs == nil {
			outputs = map[string]string{}
		}
		out[id] = translate.Need{Result: resultNames[n.GetResult()], Outputs: outputs}
	}
	return out
}

// encodePlan encodes the plan; a plan over Nomad's payload limit is tried
// again with the github.event trimmed to its scalars, then without it.
func encodePlan(p *contract.Plan, github map[string]any) ([]byte, error) {
	payload, err := contract.EncodePayload(p)
	if err == nil {
		return payload, nil
	}
	ev, ok := github["event"].(map[string]any)
	if !ok {
		return nil, err
	}
	for _, trimmed := range []map[string]any{trimEvent(ev), nil} {
		g := map[string]any{}
		for k, v := range github {
			g[k] = v
		}
		if trimmed == nil {
			delete(g, "event")
		} else {
			g["event"] = trimmed
		}
		if err := setGitHub(p, g); err != nil {
			return nil, err
		}
		if payload, err = contract.EncodePayload(p); err == nil {
			return payload, nil
		}
	}
	return nil, err
}

// trimEvent keeps an event's scalars and the scalars of its objects.
func trimEvent(ev map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range ev {
		switch x := v.(type) {
		case map[string]any:
			inner := map[string]any{}
			for ik, iv := range x {
				if isScalar(iv) {
					inner[ik] = iv
				}
			}
			out[k] = inner
		default:
			if isScalar(v) {
				out[k] = v
			}
		}
	}
	return out
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, float64, bool, nil:
		return true
	}
	return false
}

// countSteps counts the steps of the payload's job without validating
// anything, so a task that fails to parse still gets its steps closed.
func countSteps(payload []byte) int {
	var doc struct {
		Jobs map[string]struct {
			Steps []yaml.Node `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if yaml.Unmarshal(payload, &doc) != nil || len(doc.Jobs) != 1 {
		return 0
	}
	for _, j := range doc.Jobs {
		return len(j.Steps)
	}
	return 0
}

// setGitHub replaces the plan's github context.
func setGitHub(p *contract.Plan, github map[string]any) error {
	b, err := json.Marshal(github)
	if err != nil {
		return fmt.Errorf("encode the github context: %w", err)
	}
	p.Contexts["github"] = b
	return nil
}
