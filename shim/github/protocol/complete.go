package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Job/step results as completejob wants them: TaskResult enum names,
// camelCase (VssJsonMediaTypeFormatter's StringEnumConverter;
// Sdk/DTWebApi/WebApi/TaskResult.cs).
const (
	ResultSucceeded           = "succeeded"
	ResultSucceededWithIssues = "succeededWithIssues"
	ResultFailed              = "failed"
	ResultCanceled            = "canceled"
	ResultSkipped             = "skipped"
	ResultAbandoned           = "abandoned"
)

// Result is the TaskResult name for a results-service conclusion (the
// inverse of ResultsHttpClient.ConvertResultToConclusion); "" for unknown.
func (c Conclusion) Result() string {
	switch c {
	case ConclusionSuccess:
		return ResultSucceeded
	case ConclusionFailure:
		return ResultFailed
	case ConclusionCancelled:
		return ResultCanceled
	case ConclusionSkipped:
		return ResultSkipped
	}
	return ""
}

// State is the TimelineRecordState name for a results-service step status
// (Sdk/DTWebApi/WebApi/TimelineRecordState.cs; the inverse of
// ConvertStateToStatus); "" for unknown.
func (s StepStatus) State() string {
	switch s {
	case StatusCompleted:
		return "completed"
	case StatusPending:
		return "pending"
	case StatusInProgress:
		return "inProgress"
	}
	return ""
}

// nullable is a string that marshals "" as null.
type nullable string

func (n nullable) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(n))
}

// AnnotationLevel is AnnotationLevel, camelCase ("notice", "warning",
// "failure"); empty is omitted.
type AnnotationLevel string

// Annotation levels.
const (
	AnnotationNotice  AnnotationLevel = "notice"
	AnnotationWarning AnnotationLevel = "warning"
	AnnotationFailure AnnotationLevel = "failure"
)

// Annotation is Sdk/RSWebApi/Contracts/Annotation.cs (camelCase names).
type Annotation struct {
	Level                 AnnotationLevel `json:"level,omitempty"`
	Message               string          `json:"message,omitempty"`
	Title                 string          `json:"title,omitempty"`
	RawDetails            string          `json:"rawDetails,omitempty"`
	Path                  string          `json:"path,omitempty"`
	IsInfrastructureIssue bool            `json:"isInfrastructureIssue,omitempty"`
	StartLine             int64           `json:"startLine,omitempty"`
	EndLine               int64           `json:"endLine,omitempty"`
	StartColumn           int64           `json:"startColumn,omitempty"`
	EndColumn             int64           `json:"endColumn,omitempty"`
	StepNumber            int64           `json:"stepNumber,omitempty"`
}

// VariableValue is a job output.
type VariableValue struct {
	Value    string `json:"value"`
	IsSecret bool   `json:"isSecret"`
}

// StepResult is one step in completejob (Sdk/RSWebApi/Contracts/
// StepResult.cs). Its names are snake_case, but on the wire status and
// conclusion are the camelCase TimelineRecordState / TaskResult names
// ("completed", "failed"), not the numbers WorkflowStepsUpdate takes:
// MarshalJSON converts Status and Conclusion (see StepStatus.State and
// Conclusion.Result).
type StepResult struct {
	ExternalID  string
	Number      int
	Name        string
	Status      StepStatus
	Conclusion  Conclusion
	StartedAt   *time.Time
	CompletedAt *time.Time
	Annotations []Annotation
	// Added: telemetry fields the runner fills from the step's action.
	ActionName, Ref, Type string
}

type stepResultWire struct {
	ExternalID  string       `json:"external_id,omitempty"`
	Number      int          `json:"number,omitempty"`
	Name        string       `json:"name,omitempty"`
	ActionName  string       `json:"action_name,omitempty"`
	Ref         string       `json:"ref,omitempty"`
	Type        string       `json:"type,omitempty"`
	Status      nullable     `json:"status"`
	Conclusion  nullable     `json:"conclusion"`
	StartedAt   string       `json:"started_at,omitempty"`
	CompletedAt string       `json:"completed_at,omitempty"`
	Annotations []Annotation `json:"annotations,omitempty"`
}

// MarshalJSON writes the wire form.
func (s StepResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(stepResultWire{
		ExternalID: s.ExternalID, Number: s.Number, Name: s.Name,
		ActionName: s.ActionName, Ref: s.Ref, Type: s.Type,
		Status: nullable(s.Status.State()), Conclusion: nullable(s.Conclusion.Result()),
		StartedAt: isoTime(s.StartedAt), CompletedAt: isoTime(s.CompletedAt),
		Annotations: s.Annotations,
	})
}

// isoTime formats as Newtonsoft's IsoDateFormat for a UTC DateTime.
func isoTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.9999999Z07:00")
}

// CompleteJobRequest is completejob's body (Sdk/RSWebApi/Contracts/
// CompleteJobRequest.cs). planId and jobId are filled by the client.
type CompleteJobRequest struct {
	// Conclusion is a TaskResult name: ResultSucceeded, ResultFailed,
	// ResultCanceled, ResultSkipped, ...
	Conclusion  string                   `json:"conclusion"`
	Outputs     map[string]VariableValue `json:"outputs,omitempty"`
	StepResults []StepResult             `json:"stepResults,omitempty"`
	Annotations []Annotation             `json:"annotations,omitempty"`
	Telemetry   []json.RawMessage        `json:"telemetry,omitempty"`
	// EnvironmentURL is the deployment environment URL, if any.
	EnvironmentURL string `json:"environmentUrl,omitempty"`
	// BillingOwnerID defaults to the job message's billingOwnerId.
	BillingOwnerID                string `json:"billingOwnerId,omitempty"`
	InfrastructureFailureCategory string `json:"infrastructureFailureCategory,omitempty"`
}

// CompleteJob: POST {run}/completejob with the request plus planId and
// jobId, job token. 404 wraps ErrJobGone.
func (j *JobClient) CompleteJob(ctx context.Context, r CompleteJobRequest) error {
	if r.Conclusion == "" {
		return errors.New("protocol: complete job: a conclusion is required")
	}
	if r.BillingOwnerID == "" {
		r.BillingOwnerID = j.msg.BillingOwnerID
	}
	body := struct {
		PlanID string `json:"planId"`
		JobID  string `json:"jobId"`
		CompleteJobRequest
	}{j.msg.Plan.PlanID, j.msg.JobID, r}
	_, err := j.runCall(ctx, "protocol: complete job", "completejob", body)
	return err
}
