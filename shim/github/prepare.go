package github

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/forge"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
)

// ForgeName is the dispatch meta "forge" of every job this shim runs.
const ForgeName = "github"

// unrunnable is a job Solstice cannot run; its lines go to the "Set up
// job" log before the job fails.
type unrunnable struct{ lines []string }

func (u *unrunnable) Error() string { return strings.Join(u.lines, "; ") }

func refuse(lines ...string) *unrunnable { return &unrunnable{lines: lines} }

// Variables that hold credentials rather than secrets of the workflow
// (actions/runner's Variables.ToSecretsContext leaves them out).
const (
	varGitHubToken = "system.github.token"
	varAccessToken = "system.accessToken"
)

// secretName is what the guest accepts as a secret's name.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// prepare turns an acquired job into a dispatch request for label. The
// error is an *unrunnable that says, for the job log, why it cannot run.
func prepare(msg *protocol.JobMessage, label, instance string, debug *contract.DebugSSH) (nomad.Request, error) {
	github := contextMap(msg, "github")
	p, err := buildPlan(msg, github)
	if err != nil {
		return nomad.Request{}, err
	}
	p.Debug = debug
	payload, err := contract.EncodePayload(p)
	if err != nil {
		return nomad.Request{}, refuse("The job cannot run on Solstice: " + err.Error())
	}
	return nomad.Request{
		Label: label, Plan: payload, Secrets: secrets(msg), Debug: debug != nil,
		Meta: nomad.Meta{
			Forge: ForgeName, Instance: instance, TaskID: msg.JobID,
			Repository: forge.Text(github["repository"]), Run: forge.Text(github["run_id"]), JobName: jobName(msg),
		},
	}, nil
}

func jobName(msg *protocol.JobMessage) string {
	if msg.JobDisplayName != "" {
		return msg.JobDisplayName
	}
	return msg.JobName
}

func buildPlan(msg *protocol.JobMessage, github map[string]any) (*contract.Plan, error) {
	steps, err := planSteps(msg.Steps)
	if err != nil {
		return nil, err
	}
	p := &contract.Plan{
		Version:  contract.PlanVersion,
		Job:      contract.Job{ID: planJobID(msg, github), Name: jobName(msg), Workflow: forge.Text(github["workflow"])},
		Defaults: defaults(msg.Defaults),
		Env:      jobEnv(msg.EnvironmentVariables),
		Outputs:  mapping(msg.JobOutputs),
		Secrets:  secretNames(msg),
		Steps:    steps,
		Checkout: forge.Checkout(github),
	}
	if url := resultsURL(msg); url != "" && needsResults(msg) {
		p.Env = append(p.Env, contract.EnvVar{Name: resultsURLEnv, Value: url})
	}
	if p.Contexts, err = planContexts(msg, github); err != nil {
		return nil, refuse("The job cannot run on Solstice: " + err.Error())
	}
	if err := p.Validate(); err != nil {
		return nil, refuse("The job cannot run on Solstice:", "  "+err.Error())
	}
	return p, nil
}

// planJobID is the job's id in the workflow (github.job), which the plan
// wants as an identifier.
func planJobID(msg *protocol.JobMessage, github map[string]any) string {
	for _, id := range []string{forge.Text(github["job"]), msg.JobName} {
		if id != "" && secretName.MatchString(strings.ReplaceAll(id, "-", "_")) {
			return id
		}
	}
	return "job"
}

// planSteps translates the steps; any action but actions/checkout makes
// the job unrunnable, naming every such step.
func planSteps(in []protocol.Step) ([]contract.Step, error) {
	var out []contract.Step
	var bad []string
	for i, s := range in {
		ps, err := planStep(s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("  step %d (%s): %v", i+1, stepTitle(s), err))
			continue
		}
		out = append(out, ps)
	}
	if len(bad) > 0 {
		head := "The job cannot run on Solstice: Solstice runs `run` steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4 and actions/cache only:"
		return nil, refuse(append([]string{head}, bad...)...)
	}
	return out, nil
}

func planStep(s protocol.Step) (contract.Step, error) {
	ps := contract.Step{
		Name:            stepName(s),
		If:              s.Condition,
		ContinueOnError: scalar(s.ContinueOnError),
		TimeoutMinutes:  scalar(s.TimeoutInMinutes),
		Env:             mapping(s.Environment),
	}
	// Generated context names (__run, __actions_checkout) are not ids the
	// workflow can refer to.
	if s.ContextName != "" && !strings.HasPrefix(s.ContextName, "__") {
		ps.ID = s.ContextName
	}
	inputs := mapping(s.Inputs)
	switch ref := s.Reference; {
	case strings.EqualFold(ref.Type, "script"):
		ps.Run, ps.Shell, ps.WorkingDirectory = inputs["script"], inputs["shell"], inputs["workingDirectory"]
		if ps.Run == "" {
			return ps, fmt.Errorf("a run step without a script")
		}
	case strings.EqualFold(ref.Type, "repository") && isCheckout(ref):
		ps.Uses = "actions/checkout@" + ref.Ref
		ps.With = contract.Strings(inputs)
	case usesResults(ref):
		ps.Uses = actionName(ref)
		ps.With = contract.Strings(inputs)
	default:
		return ps, fmt.Errorf("the action %s is not supported", actionName(ref))
	}
	return ps, nil
}

// usesResults reports a built-in artifact or cache action, which talks
// to GitHub's results service from the guest.
func usesResults(ref protocol.StepReference) bool {
	if !strings.EqualFold(ref.Type, "repository") {
		return false
	}
	switch contract.BuiltinAction(actionName(ref)) {
	case contract.ActionUploadArtifact, contract.ActionDownloadArtifact,
		contract.ActionCache, contract.ActionCacheRestore, contract.ActionCacheSave:
		return true
	}
	return false
}

func isCheckout(ref protocol.StepReference) bool {
	return strings.EqualFold(ref.Name, "actions/checkout") && ref.Path == ""
}

func actionName(ref protocol.StepReference) string {
	switch {
	case strings.EqualFold(ref.Type, "containerRegistry"):
		return "docker://" + ref.Image
	case ref.Name == "":
		return "of type " + ref.Type
	}
	name := ref.Name
	if ref.Path != "" {
		name += "/" + ref.Path
	}
	if ref.Ref != "" {
		name += "@" + ref.Ref
	}
	return name
}

// stepName is the step's display name as written; empty when the guest
// should name it ("Run <command>").
func stepName(s protocol.Step) string {
	if s.DisplayNameToken != nil {
		return s.DisplayNameToken.Text()
	}
	return s.DisplayName
}

// stepTitle names a step for humans before the guest has evaluated it.
func stepTitle(s protocol.Step) string {
	if n := stepName(s); n != "" && !contract.IsExpression(n) {
		return n
	}
	if strings.EqualFold(s.Reference.Type, "script") {
		script := mapping(s.Inputs)["script"]
		first, _, _ := strings.Cut(strings.TrimSpace(script), "\n")
		return "Run " + first
	}
	return "Run " + actionName(s.Reference)
}

// scalar is a token as the plan writes literals and expressions.
func scalar(t *protocol.TemplateToken) contract.Scalar {
	if t == nil {
		return ""
	}
	return contract.Scalar(t.Text())
}

// mapping reads a mapping token of scalars (env, with, inputs, outputs).
func mapping(t *protocol.TemplateToken) map[string]string {
	if t == nil || t.Type != protocol.TokenMapping {
		return nil
	}
	out := map[string]string{}
	for _, e := range t.Map {
		out[e.Key.Text()] = e.Value.Text()
	}
	return out
}

// jobEnv flattens the job's env mappings in order (the workflow's, then
// the job's); later ones win, as in GitHub.
func jobEnv(tokens []protocol.TemplateToken) []contract.EnvVar {
	var env []contract.EnvVar
	for i := range tokens {
		t := &tokens[i]
		if t.Type != protocol.TokenMapping {
			continue
		}
		for _, e := range t.Map {
			env = append(env, contract.EnvVar{Name: e.Key.Text(), Value: e.Value.Text()})
		}
	}
	return env
}

// defaults reads `defaults.run` from the workflow's and the job's
// defaults, the job's winning.
func defaults(tokens []protocol.TemplateToken) contract.Defaults {
	var d contract.Defaults
	for i := range tokens {
		t := &tokens[i]
		if t.Type != protocol.TokenMapping {
			continue
		}
		for _, e := range t.Map {
			if e.Key.Text() != "run" {
				continue
			}
			run := mapping(&e.Value)
			if v := run["shell"]; v != "" {
				d.Run.Shell = v
			}
			if v := run["working-directory"]; v != "" {
				d.Run.WorkingDirectory = v
			}
		}
	}
	return d
}

// Contexts the guest cannot know itself.
var carriedContexts = []string{"github", "matrix", "strategy", "needs", "inputs", "vars"}

func planContexts(msg *protocol.JobMessage, github map[string]any) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for _, name := range carriedContexts {
		var v any
		if name == "github" {
			v = github
		} else if d, ok := msg.ContextData[name]; ok {
			v = d.Value()
		}
		if m, ok := v.(map[string]any); !ok || len(m) == 0 {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode the %s context: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

// contextMap is one of the job's contexts as plain values; for github,
// without the tokens it carries (the guest sets github.token from the
// GITHUB_TOKEN secret).
func contextMap(msg *protocol.JobMessage, name string) map[string]any {
	d, ok := msg.ContextData[name]
	if !ok {
		return map[string]any{}
	}
	m, ok := d.Value().(map[string]any)
	if !ok {
		return map[string]any{}
	}
	for k := range m {
		if name == "github" && (k == "token" || strings.HasSuffix(k, "_token")) {
			delete(m, k)
		}
	}
	return m
}

// What the guest's built-in artifact and cache actions read, as GitHub's
// runner sets them for actions: the job's access token and the results
// service's URL.
const (
	runtimeTokenSecret = "ACTIONS_RUNTIME_TOKEN"
	resultsURLEnv      = "ACTIONS_RESULTS_URL"
)

// needsResults reports whether a step uses a built-in artifact or cache
// action: only then does the job's access token enter the VM.
func needsResults(msg *protocol.JobMessage) bool {
	for _, s := range msg.Steps {
		if usesResults(s.Reference) {
			return true
		}
	}
	return false
}

// resultsURL is the results service of the job's system connection
// (ResultsServiceUrl), else the system.github.results_endpoint variable.
func resultsURL(msg *protocol.JobMessage) string {
	if e, ok := msg.SystemConnection(); ok {
		for k, v := range e.Data {
			if strings.EqualFold(k, "ResultsServiceUrl") && v != "" {
				return v
			}
		}
	}
	v, _ := msg.Variable("system.github.results_endpoint")
	return v.Value
}

// secrets is the job's `secrets` context as actions/runner builds it
// (Variables.ToSecretsContext): every secret variable but the two
// credentials, in a dictionary whose names compare case-insensitively. The
// service sends the job token twice, as system.github.token and as
// github_token; it reaches the guest once, as GITHUB_TOKEN, which is the
// name the guest sets github.token from. A job with a built-in artifact
// or cache step also gets the job's access token as ACTIONS_RUNTIME_TOKEN,
// as GitHub's runner gives it to actions; a secret, it is masked in the
// job's output like every other. Otherwise the access token stays out of
// the VM, and so do the message's mask hints, which name it.
func secrets(msg *protocol.JobMessage) map[string]string {
	out := map[string]string{}
	kept := map[string]bool{} // upper-cased names already taken
	for _, name := range slices.Sorted(maps.Keys(msg.Variables)) {
		v := msg.Variables[name]
		if !v.IsSecret || isCredential(name) || !secretName.MatchString(name) {
			continue
		}
		if strings.EqualFold(name, gitHubTokenSecret) {
			name = gitHubTokenSecret
		}
		// One value per name, as in the runner's dictionary; names sort
		// byte-wise, so the choice between two spellings is stable.
		if fold := strings.ToUpper(name); !kept[fold] {
			kept[fold] = true
			out[name] = v.Value
		}
	}
	if tok, _ := msg.Variable(varGitHubToken); tok.Value != "" {
		out[gitHubTokenSecret] = tok.Value
	}
	if tok := msg.JobToken(); tok != "" && needsResults(msg) {
		out[runtimeTokenSecret] = tok
	}
	return out
}

// gitHubTokenSecret is the job token's name among the secrets.
const gitHubTokenSecret = "GITHUB_TOKEN"

// isCredential reports the variables the runner keeps out of the secrets
// context (compared case-insensitively, as it does).
func isCredential(name string) bool {
	return strings.EqualFold(name, varGitHubToken) || strings.EqualFold(name, varAccessToken)
}

func secretNames(msg *protocol.JobMessage) []string {
	return slices.Sorted(maps.Keys(secrets(msg)))
}
