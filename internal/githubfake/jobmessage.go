package githubfake

// The AgentJobRequestMessage returned by acquirejob. Checked against
// actions/runner:
//   src/Sdk/DTPipelines/Pipelines/AgentJobRequestMessage.cs (field names;
//     private members Mask/Steps/Variables/EnvironmentVariables/FileTable),
//   ActionStep.cs, JobStep.cs, Step.cs (type "action"),
//   ActionStepDefinitionReference.cs (reference type script|repository|
//     containerRegistry; name/ref/repositoryType/path),
//   src/Sdk/DTObjectTemplating/ObjectTemplating/Tokens/TemplateTokenJsonConverter.cs
//     and TokenType.cs (bare string/bool/number for literals without
//     position; {type:3,expr}, {type:1,seq}, {type:2,map:[{Key,Value}]}),
//   src/Sdk/DTPipelines/Pipelines/ContextData/PipelineContextDataJsonConverter.cs
//     (bare scalars; {t:1,a}, {t:2,d:[{k,v}]}),
//   src/Sdk/DTWebApi/WebApi/ServiceEndpointLegacy/*.cs, JobResources.cs,
//     VariableValue.cs, MaskHint.cs/MaskType.cs,
//   src/Runner.Listener/JobDispatcher.cs (SystemVssConnection.url is the run
//     service used for renew/complete; the AccessToken is parsed as a JWT for
//     orch_id), src/Runner.Common/JobServerQueue.cs / ResultsServer.cs
//     (system.github.results_endpoint, data.FeedStreamUrl used verbatim as a
//     ws:// URL), src/Runner.Common/Util/MessageUtil.cs (messageType
//     "RunnerJobRequest" marks a run-service job).
// Mapping pairs are written as {"Key":..,"Value":..}; Newtonsoft and Go's
// encoding/json both match those names case-insensitively.

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JobSpec describes a job to queue.
type JobSpec struct {
	Name        string   // jobName (workflow job id); default "build"
	DisplayName string   // jobDisplayName; default Name
	Labels      []string // runs-on: only runners with all labels get it
	Steps       []Step
	// ContextData entries (github, matrix, needs, inputs, vars, strategy,
	// ...). Values may be string, bool, int, float64, nil, []any,
	// []string, map[string]any or map[string]string. A "github" map is
	// merged over the fake's defaults.
	ContextData map[string]any
	Variables   map[string]Variable // merged over the defaults
	Secrets     map[string]string   // added as variables with isSecret
	Mask        []string            // regex mask hints
	Env         map[string]string   // job-level env (environmentVariables)
	// Defaults is the job's `defaults.run` (shell, working-directory), sent
	// as the service sends it: a list of mapping tokens.
	Defaults map[string]string
	Outputs  map[string]string // jobOutputs; "${{ ... }}" becomes an expression
	// Run, if set, puts the job in that job's workflow run (same plan id
	// and github.run_id), as a dependent job: it sees the run's artifacts.
	Run *Job
}

// Step is one job step: a run step (Run set) or an action (Uses set).
// String fields may contain "${{ expr }}", which becomes an expression
// token as the server would send it.
type Step struct {
	ID               string // GUID; generated when empty
	ContextName      string // the workflow step id; default "__run_N" / "__owner_repo"
	DisplayName      string
	Run              string
	Shell            string
	WorkingDirectory string
	Uses             string            // "actions/checkout@v4", "owner/repo/path@ref"
	With             map[string]string // action inputs
	If               string            // condition; default "success()"
	ContinueOnError  bool
	Env              map[string]string
	TimeoutMinutes   int
}

func (spec *JobSpec) setDefaults() {
	if spec.Name == "" {
		spec.Name = "build"
	}
	if spec.DisplayName == "" {
		spec.DisplayName = spec.Name
	}
}

type jobMessage struct {
	MessageType          string            `json:"messageType"`
	Plan                 planReference     `json:"plan"`
	Timeline             timelineReference `json:"timeline"`
	JobID                string            `json:"jobId"`
	JobDisplayName       string            `json:"jobDisplayName"`
	JobName              string            `json:"jobName"`
	JobOutputs           any               `json:"jobOutputs,omitempty"`
	RequestID            int64             `json:"requestId"`
	LockedUntil          time.Time         `json:"lockedUntil"`
	Resources            jobResources      `json:"resources"`
	ContextData          map[string]any    `json:"contextData"`
	Workspace            map[string]any    `json:"workspace"`
	Mask                 []maskHint        `json:"mask,omitempty"`
	EnvironmentVariables []any             `json:"environmentVariables,omitempty"`
	Defaults             []any             `json:"defaults,omitempty"`
	// Sent as null for a job without a container, services or snapshot.
	JobContainer         any                 `json:"jobContainer"`
	JobServiceContainers any                 `json:"jobServiceContainers"`
	Snapshot             any                 `json:"snapshot"`
	ActionsEnvironment   any                 `json:"actionsEnvironment"`
	BillingOwnerID       string              `json:"billingOwnerId,omitempty"`
	Variables            map[string]varValue `json:"variables"`
	Steps                []actionStep        `json:"steps"`
	FileTable            []string            `json:"fileTable"`
}

type planReference struct {
	ScopeIdentifier string `json:"scopeIdentifier"`
	PlanType        string `json:"planType"`
	Version         int    `json:"version"`
	PlanID          string `json:"planId"`
}

type timelineReference struct {
	ID       string  `json:"id"`
	ChangeID int     `json:"changeId"`
	Location *string `json:"location"`
}

type jobResources struct {
	Endpoints []serviceEndpoint `json:"endpoints"`
}

type serviceEndpoint struct {
	Name          string            `json:"name"`
	URL           string            `json:"url"`
	Authorization endpointAuth      `json:"authorization"`
	Data          map[string]string `json:"data"`
	IsShared      bool              `json:"isShared"`
	IsReady       bool              `json:"isReady"`
}

type endpointAuth struct {
	Scheme     string            `json:"scheme"`
	Parameters map[string]string `json:"parameters"`
}

type maskHint struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type varValue struct {
	Value    string `json:"value"`
	IsSecret bool   `json:"isSecret,omitempty"`
}

type actionStep struct {
	Type             string        `json:"type"`
	Reference        stepReference `json:"reference"`
	DisplayNameToken any           `json:"displayNameToken,omitempty"`
	ContextName      string        `json:"contextName"`
	Environment      any           `json:"environment,omitempty"`
	Inputs           any           `json:"inputs,omitempty"`
	Condition        string        `json:"condition"`
	ContinueOnError  any           `json:"continueOnError,omitempty"`
	TimeoutInMinutes any           `json:"timeoutInMinutes,omitempty"`
	ID               string        `json:"id"`
	Name             string        `json:"name"`
}

type stepReference struct {
	Type           string `json:"type"`
	Name           string `json:"name,omitempty"`
	Ref            string `json:"ref,omitempty"`
	RepositoryType string `json:"repositoryType,omitempty"`
	Path           string `json:"path,omitempty"`
}

// jobToken mints the job's access token: a JWT (the runner parses it for
// orch_id) signed with the fake's HMAC key.
func (s *Server) jobToken(j *Job) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss":     "fake-vstoken",
		"aud":     "vso:" + j.planID,
		"nbf":     now.Add(-time.Minute).Unix(),
		"exp":     now.Add(6 * time.Hour).Unix(),
		"orch_id": j.planID + "." + j.spec.Name + ".__default",
		"scp":     "Actions.Results:" + j.planID + ":" + j.jobID,
		"jti":     newGUID(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.signKey)
	if err != nil {
		panic(err)
	}
	return tok
}

// buildJobMessage renders the AgentJobRequestMessage. s.mu held.
func (s *Server) buildJobMessage(j *Job) *jobMessage {
	spec := &j.spec
	m := &jobMessage{
		MessageType:    "RunnerJobRequest",
		Plan:           planReference{ScopeIdentifier: zeroGUID, PlanType: "actions", Version: 1, PlanID: j.planID},
		Timeline:       timelineReference{ID: j.timelineID},
		JobID:          j.jobID,
		JobDisplayName: spec.DisplayName,
		JobName:        spec.Name,
		RequestID:      j.requestID,
		LockedUntil:    j.lockedUntil.UTC(),
		Resources:      jobResources{Endpoints: []serviceEndpoint{s.systemConnection(j)}},
		ContextData:    s.contextData(j),
		Workspace:      map[string]any{},
		Variables:      s.variables(j),
		FileTable:      []string{".github/workflows/ci.yml"},
	}
	if len(spec.Outputs) > 0 {
		m.JobOutputs = mappingToken(spec.Outputs)
	}
	if len(spec.Env) > 0 {
		m.EnvironmentVariables = []any{mappingToken(spec.Env)}
	}
	if len(spec.Defaults) > 0 {
		run := map[string]any{"type": 2, "map": []map[string]any{{"Key": "run", "Value": mappingToken(spec.Defaults)}}}
		m.Defaults = []any{run}
	}
	m.BillingOwnerID = j.billingOwnerID
	// Like the service: the job's credentials and every secret value are
	// mask hints, then whatever the test adds.
	hints := []string{regexp.QuoteMeta(j.token), regexp.QuoteMeta(m.Variables["system.github.token"].Value)}
	for _, name := range slices.Sorted(maps.Keys(spec.Secrets)) {
		hints = append(hints, regexp.QuoteMeta(spec.Secrets[name]))
	}
	for _, v := range append(hints, spec.Mask...) {
		m.Mask = append(m.Mask, maskHint{Type: "regex", Value: v})
	}
	for i, st := range j.steps {
		m.Steps = append(m.Steps, renderStep(st, i))
	}
	return m
}

func (s *Server) systemConnection(j *Job) serviceEndpoint {
	return serviceEndpoint{
		Name:          "SystemVssConnection",
		URL:           s.RunServiceURL(),
		Authorization: endpointAuth{Scheme: "OAuth", Parameters: map[string]string{"AccessToken": j.token}},
		Data: map[string]string{
			"FeedStreamUrl":       "ws" + strings.TrimPrefix(s.URL(), "http") + "/feed/" + j.jobID,
			"ResultsServiceUrl":   s.ResultsURL(),
			"CacheServerUrl":      s.URL() + "/cache/",
			"PipelinesServiceUrl": s.URL() + "/pipelines/",
			"GenerateIdTokenUrl":  "",
			"ConnectivityChecks":  `["` + s.URL() + `/health"]`,
		},
		IsReady: true,
	}
}

// variables are the job's variables as the run service sends them
// (captured RunnerJobRequest messages): the job token twice, as
// system.github.token and as github_token (the runner's secrets context
// leaves out only the former, so secrets.GITHUB_TOKEN resolves through
// github_token), the token's permissions, orchestration and runner-group
// facts and feature flags, then the job's secrets and extra variables.
func (s *Server) variables(j *Job) map[string]varValue {
	token := j.GitHubToken()
	v := map[string]varValue{
		"system.github.token":                    {Value: token, IsSecret: true},
		"github_token":                           {Value: token, IsSecret: true},
		"system.github.token.permissions":        {Value: `{"Contents":"read","Metadata":"read","Packages":"read"}`},
		"system.github.results_endpoint":         {Value: s.ResultsURL()},
		"system.github.job":                      {Value: j.spec.Name},
		"system.orchestrationId":                 {Value: j.planID + "." + j.spec.Name + ".__default"},
		"system.phaseDisplayName":                {Value: j.spec.DisplayName},
		"system.runnerGroupName":                 {Value: "Default"},
		"system.runnerEnvironment":               {Value: "self-hosted"},
		"system.from_run_service":                {Value: "true"},
		"system.runner.lowdiskspacethreshold":    {Value: "100"},
		"DistributedTask.NewActionMetadata":      {Value: "true"},
		"DistributedTask.EnableCompositeActions": {Value: "true"},
	}
	for k, val := range j.spec.Secrets {
		v[k] = varValue{Value: val, IsSecret: true}
	}
	for k, val := range j.spec.Variables {
		v[k] = varValue(val)
	}
	return v
}

func (s *Server) contextData(j *Job) map[string]any {
	gh := map[string]any{
		"repository":       defaultScope,
		"repository_owner": strings.Split(defaultScope, "/")[0],
		"server_url":       s.URL(),
		"api_url":          s.APIURL(),
		"graphql_url":      s.APIURL() + "/graphql",
		"run_id":           fmt.Sprint(j.runID),
		"run_number":       "1",
		"run_attempt":      "1",
		"job":              j.spec.Name,
		"workflow":         "CI",
		"event_name":       "push",
		"sha":              strings.Repeat("0", 40),
		"ref":              "refs/heads/main",
		"ref_name":         "main",
		"actor":            "octocat",
		"retention_days":   "90",
		"token":            j.GitHubToken(),
	}
	out := map[string]any{}
	for k, v := range j.spec.ContextData {
		out[k] = v
	}
	if extra, ok := out["github"].(map[string]any); ok {
		for k, v := range extra {
			gh[k] = v
		}
	}
	out["github"] = gh
	for k, v := range out {
		out[k] = ContextValue(v)
	}
	return out
}

func renderStep(st Step, i int) actionStep {
	as := actionStep{Type: "action", ID: st.ID, Condition: condition(st.If)}
	if st.Uses != "" {
		as.Reference = repoReference(st.Uses)
		as.Inputs = mappingToken(st.With)
		as.ContextName = "__" + strings.NewReplacer("/", "_", "@", "_", ".", "_").Replace(as.Reference.Name)
	} else {
		as.Reference = stepReference{Type: "script"}
		in := [][2]string{{"script", st.Run}}
		if st.Shell != "" {
			in = append(in, [2]string{"shell", st.Shell})
		}
		if st.WorkingDirectory != "" {
			in = append(in, [2]string{"workingDirectory", st.WorkingDirectory})
		}
		as.Inputs = orderedMapping(in)
		as.ContextName = fmt.Sprintf("__run_%d", i+1)
		if i == 0 {
			as.ContextName = "__run"
		}
	}
	if st.ContextName != "" {
		as.ContextName = st.ContextName
	}
	as.Name = as.ContextName
	if st.DisplayName != "" {
		as.DisplayNameToken = StringToken(st.DisplayName)
	}
	if len(st.Env) > 0 {
		as.Environment = mappingToken(st.Env)
	}
	if st.ContinueOnError {
		as.ContinueOnError = true
	}
	if st.TimeoutMinutes > 0 {
		as.TimeoutInMinutes = st.TimeoutMinutes
	}
	return as
}

func condition(c string) string {
	c = strings.TrimSpace(c)
	if c == "" {
		return "success()"
	}
	if inner, ok := strings.CutPrefix(c, "${{"); ok && strings.HasSuffix(inner, "}}") {
		return strings.TrimSpace(strings.TrimSuffix(inner, "}}"))
	}
	return c
}

// repoReference parses "owner/repo[/path]@ref".
func repoReference(uses string) stepReference {
	name, ref, _ := strings.Cut(uses, "@")
	parts := strings.SplitN(name, "/", 3)
	r := stepReference{Type: "repository", Name: name, Ref: ref, RepositoryType: "GitHub"}
	if len(parts) == 3 {
		r.Name = parts[0] + "/" + parts[1]
		r.Path = parts[2]
	}
	return r
}

// StringToken renders s as a TemplateToken: a bare string literal, or an
// expression token {"type":3,"expr":...} when s contains "${{ }}"
// (mixed text becomes format('..{0}..', expr), as the server compiles it).
func StringToken(s string) any {
	var lits, exprs []string
	rest := s
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			break
		}
		k := strings.Index(rest[i:], "}}")
		if k < 0 {
			break
		}
		lits = append(lits, rest[:i])
		exprs = append(exprs, strings.TrimSpace(rest[i+3:i+k]))
		rest = rest[i+k+2:]
	}
	if len(exprs) == 0 {
		return s
	}
	if len(exprs) == 1 && lits[0] == "" && rest == "" {
		return map[string]any{"type": 3, "expr": exprs[0]}
	}
	esc := strings.NewReplacer("'", "''", "{", "{{", "}", "}}")
	var f strings.Builder
	for i, l := range lits {
		f.WriteString(esc.Replace(l))
		fmt.Fprintf(&f, "{%d}", i)
	}
	f.WriteString(esc.Replace(rest))
	return map[string]any{"type": 3, "expr": fmt.Sprintf("format('%s', %s)", f.String(), strings.Join(exprs, ", "))}
}

func mappingToken(m map[string]string) any {
	keys := slices.Sorted(maps.Keys(m))
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k, m[k]}
	}
	return orderedMapping(pairs)
}

func orderedMapping(pairs [][2]string) any {
	items := make([]map[string]any, len(pairs))
	for i, p := range pairs {
		items[i] = map[string]any{"Key": p[0], "Value": StringToken(p[1])}
	}
	tok := map[string]any{"type": 2}
	if len(items) > 0 {
		tok["map"] = items
	}
	return tok
}

// ContextValue converts a Go value to PipelineContextData JSON as the
// official converter writes it: bare string/bool/number, {"t":1,"a":[..]}
// for arrays and {"t":2,"d":[{"k":..,"v":..}]} for dictionaries.
func ContextValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64, float32, int, int32, int64, uint, uint64:
		return x
	case []string:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = e
		}
		return ContextValue(a)
	case []any:
		out := map[string]any{"t": 1}
		if len(x) > 0 {
			a := make([]any, len(x))
			for i, e := range x {
				a[i] = ContextValue(e)
			}
			out["a"] = a
		}
		return out
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return ContextValue(m)
	case map[string]any:
		return dictionary(x)
	default:
		panic(fmt.Sprintf("githubfake: unsupported context value %T", v))
	}
}

func dictionary(m map[string]any) any {
	keys := slices.Sorted(maps.Keys(m))
	out := map[string]any{"t": 2}
	if len(keys) > 0 {
		d := make([]map[string]any, len(keys))
		for i, k := range keys {
			d[i] = map[string]any{"k": k, "v": ContextValue(m[k])}
		}
		out["d"] = d
	}
	return out
}
