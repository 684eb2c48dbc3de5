package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// JobMessage is the AgentJobRequestMessage returned by acquirejob
// (Sdk/DTPipelines/Pipelines/AgentJobRequestMessage.cs). Decoding is
// lenient: unknown members are ignored and names match case-insensitively
// ("Variables" and "variables" both occur).
type JobMessage struct {
	MessageType    string   `json:"messageType"`
	Plan           Plan     `json:"plan"`
	Timeline       Timeline `json:"timeline"`
	JobID          string   `json:"jobId"`
	JobDisplayName string   `json:"jobDisplayName"`
	JobName        string   `json:"jobName"`
	RequestID      int64    `json:"requestId"`
	// LockedUntil is decoded leniently (.NET writes DateTime without a
	// zone when it is unspecified; that is read as UTC).
	LockedUntil          time.Time              `json:"lockedUntil"`
	Steps                []Step                 `json:"steps"`
	Variables            map[string]Variable    `json:"variables"`
	ContextData          map[string]ContextData `json:"contextData"`
	Resources            Resources              `json:"resources"`
	EnvironmentVariables []TemplateToken        `json:"environmentVariables"`
	Defaults             []TemplateToken        `json:"defaults"`
	JobOutputs           *TemplateToken         `json:"jobOutputs"`
	JobContainer         *TemplateToken         `json:"jobContainer"`
	JobServiceContainers *TemplateToken         `json:"jobServiceContainers"`
	Snapshot             *TemplateToken         `json:"snapshot"`
	Mask                 []MaskHint             `json:"mask"`
	FileTable            []string               `json:"fileTable"`
	Workspace            *Workspace             `json:"workspace"`
	ActionsEnvironment   json.RawMessage        `json:"actionsEnvironment"`
	BillingOwnerID       string                 `json:"billingOwnerId"`
	// Raw is the message exactly as received.
	Raw json.RawMessage `json:"-"`
}

// Plan is TaskOrchestrationPlanReference.
type Plan struct {
	ScopeIdentifier string `json:"scopeIdentifier"`
	PlanID          string `json:"planId"`
	PlanType        string `json:"planType"`
	Version         int    `json:"version"`
}

// Timeline is TimelineReference.
type Timeline struct {
	ID       string `json:"id"`
	ChangeID int    `json:"changeId"`
	Location string `json:"location"`
}

// Variable is VariableValue.
type Variable struct {
	Value      string `json:"value"`
	IsSecret   bool   `json:"isSecret"`
	IsReadOnly bool   `json:"isReadOnly,omitempty"`
}

// Workspace is WorkspaceOptions.
type Workspace struct {
	Clean string `json:"clean"`
}

// Resources is JobResources (endpoints only; containers and repositories
// are kept raw).
type Resources struct {
	Endpoints    []Endpoint      `json:"endpoints"`
	Containers   json.RawMessage `json:"containers,omitempty"`
	Repositories json.RawMessage `json:"repositories,omitempty"`
}

// Endpoint is a ServiceEndpoint.
type Endpoint struct {
	ID            string                `json:"id,omitempty"`
	Name          string                `json:"name"`
	Type          string                `json:"type,omitempty"`
	URL           string                `json:"url"`
	Authorization EndpointAuthorization `json:"authorization"`
	Data          map[string]string     `json:"data"`
}

// EndpointAuthorization is EndpointAuthorization.
type EndpointAuthorization struct {
	Scheme     string            `json:"scheme"`
	Parameters map[string]string `json:"parameters"`
}

// MaskHint is a value or regex the log must mask.
type MaskHint struct {
	Type  string `json:"type"` // "variable" or "regex"
	Value string `json:"value"`
}

// Step is an ActionStep (JobStep/Step fields included).
type Step struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	DisplayName      string         `json:"displayName"`
	Reference        StepReference  `json:"reference"`
	DisplayNameToken *TemplateToken `json:"displayNameToken"`
	ContextName      string         `json:"contextName"`
	Environment      *TemplateToken `json:"environment"`
	Inputs           *TemplateToken `json:"inputs"`
	Condition        string         `json:"condition"`
	ContinueOnError  *TemplateToken `json:"continueOnError"`
	TimeoutInMinutes *TemplateToken `json:"timeoutInMinutes"`
	Background       bool           `json:"background,omitempty"`
}

// StepReference is ActionStepDefinitionReference.
type StepReference struct {
	// Type is "script", "repository" or "containerRegistry".
	Type           string `json:"type"`
	Name           string `json:"name,omitempty"`
	Ref            string `json:"ref,omitempty"`
	RepositoryType string `json:"repositoryType,omitempty"`
	Path           string `json:"path,omitempty"`
	Image          string `json:"image,omitempty"`
}

// Reference types.
const (
	ReferenceRepository        = "repository"
	ReferenceContainerRegistry = "containerRegistry"
	ReferenceScript            = "script"
)

// UnmarshalJSON normalises type, given as ActionSourceType name or number,
// to ReferenceRepository, ReferenceContainerRegistry or ReferenceScript.
func (r *StepReference) UnmarshalJSON(data []byte) error {
	type plain StepReference
	aux := struct {
		*plain
		Type json.RawMessage `json:"type"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	t, err := enumFromJSON(aux.Type, map[int]string{1: ReferenceRepository, 2: ReferenceContainerRegistry, 3: ReferenceScript})
	r.Type = t
	return err
}

// UnmarshalJSON normalises type (MaskType name or number) to "variable" or
// "regex".
func (h *MaskHint) UnmarshalJSON(data []byte) error {
	type plain MaskHint
	aux := struct {
		*plain
		Type json.RawMessage `json:"type"`
	}{plain: (*plain)(h)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	t, err := enumFromJSON(aux.Type, map[int]string{1: "variable", 2: "regex"})
	h.Type = t
	return err
}

// enumFromJSON decodes a .NET enum written as a name or a number and
// normalises it to the canonical camelCase name in names.
func enumFromJSON(data []byte, names map[int]string) (string, error) {
	if len(data) == 0 || string(data) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		for _, n := range names {
			if strings.EqualFold(n, s) {
				return n, nil
			}
		}
		return s, nil
	}
	var n int
	if err := json.Unmarshal(data, &n); err != nil {
		return "", fmt.Errorf("protocol: enum: %s", data)
	}
	if name, ok := names[n]; ok {
		return name, nil
	}
	return strconv.Itoa(n), nil
}

// IsScript reports a `run:` step.
func (r StepReference) IsScript() bool {
	return r.Type == ReferenceScript
}

// SystemConnection returns the SystemVssConnection endpoint.
func (m *JobMessage) SystemConnection() (*Endpoint, bool) {
	for i := range m.Resources.Endpoints {
		if strings.EqualFold(m.Resources.Endpoints[i].Name, "SystemVssConnection") {
			return &m.Resources.Endpoints[i], true
		}
	}
	return nil, false
}

// JobToken is SystemVssConnection.authorization.parameters.AccessToken.
func (m *JobMessage) JobToken() string {
	if e, ok := m.SystemConnection(); ok {
		v, _ := lookupFold(e.Authorization.Parameters, "AccessToken")
		return v
	}
	return ""
}

// FeedURL is SystemVssConnection.data.FeedStreamUrl (live console).
func (m *JobMessage) FeedURL() string {
	if e, ok := m.SystemConnection(); ok {
		v, _ := lookupFold(e.Data, "FeedStreamUrl")
		return v
	}
	return ""
}

// Variable looks a variable up case-insensitively (runner Variables are).
func (m *JobMessage) Variable(name string) (Variable, bool) {
	if v, ok := m.Variables[name]; ok {
		return v, true
	}
	for k, v := range m.Variables {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return Variable{}, false
}

// ResultsURL is variables["system.github.results_endpoint"].
func (m *JobMessage) ResultsURL() string {
	v, _ := m.Variable("system.github.results_endpoint")
	return v.Value
}

// maxMessageDepth bounds how deeply a job message may nest. Template
// tokens and context values decode themselves by unmarshalling their own
// JSON again, so every level re-reads all the text below it: a message
// nested a thousand levels deep around 1 MB of text took 9 s to decode,
// and one near encoding/json's own limit (10,000) around the 64 MiB the
// client accepts would take hours. Real messages nest a few dozen levels
// at most; Newtonsoft.Json, which GitHub's own runner reads them with,
// refuses more than 64 by default.
const maxMessageDepth = 64

// UnmarshalJSON decodes the message leniently; see the type's doc.
func (m *JobMessage) UnmarshalJSON(data []byte) error {
	if depth(data) > maxMessageDepth {
		return fmt.Errorf("protocol: job message nests more than %d levels deep", maxMessageDepth)
	}
	type plain JobMessage
	aux := struct {
		*plain
		LockedUntil string `json:"lockedUntil"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	if aux.LockedUntil != "" {
		t, err := parseDotNetTime(aux.LockedUntil)
		if err != nil {
			return err
		}
		m.LockedUntil = t
	}
	return nil
}

// parseDotNetTime parses ISO 8601 as Newtonsoft writes DateTime: with or
// without fraction and zone (no zone means UTC).
func parseDotNetTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("protocol: invalid time %q", s)
}

// depth returns how deeply the JSON text nests objects and arrays (it
// stops counting past maxMessageDepth). The text is valid JSON: the
// decoder checked it before calling UnmarshalJSON.
func depth(data []byte) int {
	level, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString && escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if level++; level > deepest {
				if deepest = level; deepest > maxMessageDepth {
					return deepest
				}
			}
		case c == '}' || c == ']':
			level--
		}
	}
	return deepest
}
