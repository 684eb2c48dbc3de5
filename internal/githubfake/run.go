package githubfake

// Run service. Checked against actions/runner:
//   src/Sdk/RSWebApi/RunServiceHttpClient.cs (POST {base}acquirejob,
//     renewjob, completejob; errors {source:"actions-run-service",
//     statusCode, errorMessage}; 404/409/422 on acquire),
//   src/Sdk/RSWebApi/Contracts/AcquireJobRequest.cs, RenewJobRequest.cs,
//     RenewJobResponse.cs, CompleteJobRequest.cs, StepResult.cs,
//     Annotation.cs, AnnotationLevel.cs, Telemetry.cs,
//   src/Sdk/DTWebApi/WebApi/TaskResult.cs, TimelineRecordState.cs and
//   src/Sdk/WebApi/WebApi/VssJsonMediaTypeFormatter.cs (enums as camelCase
//     strings: "succeeded", "completed", "failure"),
//   src/Runner.Listener/JobDispatcher.cs (renew with the job token every
//     60s against SystemVssConnection.url).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

type runServiceError struct {
	Source       string `json:"source"`
	StatusCode   int    `json:"statusCode"`
	ErrorMessage string `json:"errorMessage"`
}

type acquireJobRequest struct {
	JobMessageID   string `json:"jobMessageId"`
	RunnerOS       string `json:"runnerOS"`
	BillingOwnerID string `json:"billingOwnerId"`
}

type renewJobRequest struct {
	PlanID string `json:"planId"`
	JobID  string `json:"jobId"`
}

type wireVariable struct {
	Value    *string `json:"value"`
	IsSecret bool    `json:"isSecret"`
}

type wireAnnotation struct {
	Level                 string `json:"level"`
	Message               string `json:"message"`
	Title                 string `json:"title"`
	RawDetails            string `json:"rawDetails"`
	Path                  string `json:"path"`
	IsInfrastructureIssue bool   `json:"isInfrastructureIssue"`
	StartLine             int64  `json:"startLine"`
	EndLine               int64  `json:"endLine"`
	StartColumn           int64  `json:"startColumn"`
	EndColumn             int64  `json:"endColumn"`
	StepNumber            int64  `json:"stepNumber"`
}

type wireStepResult struct {
	ExternalID               string           `json:"external_id"`
	Number                   *int             `json:"number"`
	Name                     string           `json:"name"`
	ActionName               string           `json:"action_name"`
	Ref                      string           `json:"ref"`
	Type                     string           `json:"type"`
	Status                   *string          `json:"status"`
	Conclusion               *string          `json:"conclusion"`
	StartedAt                *string          `json:"started_at"`
	CompletedAt              *string          `json:"completed_at"`
	CompletedLogURL          string           `json:"completed_log_url"`
	CompletedLogLines        *int64           `json:"completed_log_lines"`
	Annotations              []wireAnnotation `json:"annotations"`
	IsBackground             bool             `json:"is_background"`
	BackgroundControlType    string           `json:"background_control_type"`
	BackgroundControlStepIDs []string         `json:"background_control_step_ids"`
}

type completeJobRequest struct {
	PlanID                        string                  `json:"planId"`
	JobID                         string                  `json:"jobId"`
	Conclusion                    *string                 `json:"conclusion"`
	Outputs                       map[string]wireVariable `json:"outputs"`
	StepResults                   []wireStepResult        `json:"stepResults"`
	Annotations                   []wireAnnotation        `json:"annotations"`
	Telemetry                     []json.RawMessage       `json:"telemetry"`
	EnvironmentURL                string                  `json:"environmentUrl"`
	BillingOwnerID                string                  `json:"billingOwnerId"`
	InfrastructureFailureCategory string                  `json:"infrastructureFailureCategory"`
}

// TaskResult and TimelineRecordState as VssJsonMediaTypeFormatter writes them.
var (
	taskResults      = set("succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned")
	timelineStates   = set("pending", "inProgress", "completed", "delayed")
	annotationLevels = set("unknown", "notice", "warning", "failure")
)

func set(vals ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func (s *Server) runRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /run/acquirejob", s.handleAcquire)
	mux.HandleFunc("POST /run/renewjob", s.handleRenew)
	mux.HandleFunc("POST /run/completejob", s.handleComplete)
}

func (s *Server) runFail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.record(r, status, "run service: "+msg)
	writeJSON(w, status, runServiceError{Source: "actions-run-service", StatusCode: status, ErrorMessage: msg})
}

// authJob checks a job-token bearer. On failure it has answered 401.
func (s *Server) authJob(w http.ResponseWriter, r *http.Request) *Job {
	tok, ok := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	var job *Job
	for _, j := range s.jobs {
		if ok && j.token == tok && j.acquired {
			job = j
		}
	}
	reason := ""
	switch {
	case s.forceJob401 > 0:
		s.forceJob401--
		reason = "injected 401 (ForceJobUnauthorized)"
	case !ok:
		reason = "missing Bearer job token"
	case job == nil:
		reason = "bearer is not the job token of an acquired job (runner OAuth token used?)"
	default:
		return job
	}
	s.recordLocked(r, http.StatusUnauthorized, reason)
	http.Error(w, reason, http.StatusUnauthorized)
	return nil
}

func (s *Server) handleAcquire(w http.ResponseWriter, r *http.Request) {
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	var req acquireJobRequest
	if err := decodeStrict(r, &req); err != nil {
		s.runFail(w, r, http.StatusBadRequest, "acquirejob: "+err.Error())
		return
	}
	s.mu.Lock()
	j := rn.current
	switch {
	case j == nil || j.runnerRequestID != req.JobMessageID:
		s.mu.Unlock()
		s.runFail(w, r, http.StatusNotFound, fmt.Sprintf("acquirejob: jobMessageId %q is not a runner_request_id delivered to this runner", req.JobMessageID))
		return
	case j.acquired:
		s.mu.Unlock()
		s.runFail(w, r, http.StatusConflict, "acquirejob: job already acquired")
		return
	case j.isDone():
		s.mu.Unlock()
		s.runFail(w, r, http.StatusNotFound, "acquirejob: job no longer exists")
		return
	}
	if !j.acked && !s.opts.NoAcknowledge {
		s.recordLocked(r, 0, "acquirejob before acknowledge although should_acknowledge was true")
	}
	if req.RunnerOS == "" {
		s.recordLocked(r, 0, "acquirejob: runnerOS is empty")
	}
	j.acquired = true
	j.result.AcquiredAt = time.Now()
	s.startLockLocked(j)
	msg := s.buildJobMessage(j)
	close(j.acquiredCh)
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, msg)
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	j := s.authJob(w, r)
	if j == nil {
		return
	}
	var req renewJobRequest
	if err := decodeStrict(r, &req); err != nil {
		s.runFail(w, r, http.StatusBadRequest, "renewjob: "+err.Error())
		return
	}
	s.mu.Lock()
	reason := s.jobStateProblem(j, req.PlanID, req.JobID)
	if reason != "" {
		s.mu.Unlock()
		s.runFail(w, r, http.StatusNotFound, "renewjob: "+reason)
		return
	}
	s.startLockLocked(j)
	j.result.Renewals = append(j.result.Renewals, time.Now())
	until := j.lockedUntil.UTC()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"lockedUntil": until})
}

// jobStateProblem checks ids and that the job is still live. s.mu held.
func (s *Server) jobStateProblem(j *Job, planID, jobID string) string {
	switch {
	case planID != j.planID || jobID != j.jobID:
		return fmt.Sprintf("planId/jobId %s/%s do not match the job %s/%s", planID, jobID, j.planID, j.jobID)
	case j.expired:
		return "job was abandoned: its lock expired"
	case j.completed:
		return "job is already completed"
	case j.isDone():
		return "job no longer exists"
	}
	return ""
}

func (s *Server) handleComplete(w http.ResponseWriter, r *http.Request) {
	j := s.authJob(w, r)
	if j == nil {
		return
	}
	var req completeJobRequest
	if err := decodeStrict(r, &req); err != nil {
		s.runFail(w, r, http.StatusBadRequest, "completejob: "+err.Error())
		return
	}
	if reason := validateComplete(&req); reason != "" {
		s.runFail(w, r, http.StatusBadRequest, "completejob: "+reason)
		return
	}
	s.mu.Lock()
	if reason := s.jobStateProblem(j, req.PlanID, req.JobID); reason != "" {
		s.mu.Unlock()
		s.runFail(w, r, http.StatusNotFound, "completejob: "+reason)
		return
	}
	if reason := s.checkStepResultsLocked(j, req.StepResults); reason != "" {
		s.mu.Unlock()
		s.runFail(w, r, http.StatusBadRequest, "completejob: "+reason)
		return
	}
	j.completed = true
	s.storeCompletion(j, &req)
	j.finishLocked(nil)
	s.notifyLocked()
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func validateComplete(req *completeJobRequest) string {
	if req.Conclusion == nil || !taskResults[*req.Conclusion] {
		return fmt.Sprintf("conclusion %s is not a camelCase TaskResult (succeeded|succeededWithIssues|failed|canceled|skipped|abandoned)", quoteOpt(req.Conclusion))
	}
	for k := range req.Outputs {
		if k == "" {
			return "outputs: empty name"
		}
	}
	if reason := checkAnnotations(req.Annotations); reason != "" {
		return "annotations: " + reason
	}
	for i, sr := range req.StepResults {
		if reason := checkStepResult(sr); reason != "" {
			return fmt.Sprintf("stepResults[%d]: %s", i, reason)
		}
	}
	return ""
}

func checkStepResult(sr wireStepResult) string {
	switch {
	case !isGUID(sr.ExternalID):
		return fmt.Sprintf("external_id %q is not a lowercase GUID", sr.ExternalID)
	case sr.Number == nil || *sr.Number < 1:
		return "number must be >= 1"
	case sr.Status != nil && !timelineStates[*sr.Status]:
		return fmt.Sprintf("status %q is not a camelCase TimelineRecordState (pending|inProgress|completed|delayed)", *sr.Status)
	case sr.Conclusion != nil && !taskResults[*sr.Conclusion]:
		return fmt.Sprintf("conclusion %q is not a camelCase TaskResult", *sr.Conclusion)
	}
	for _, ts := range []*string{sr.StartedAt, sr.CompletedAt} {
		if ts != nil {
			if _, err := time.Parse(time.RFC3339Nano, *ts); err != nil {
				return fmt.Sprintf("timestamp %q is not ISO 8601: %v", *ts, err)
			}
		}
	}
	return checkAnnotations(sr.Annotations)
}

func checkAnnotations(as []wireAnnotation) string {
	for _, a := range as {
		if !annotationLevels[a.Level] {
			return fmt.Sprintf("annotation level %q is not unknown|notice|warning|failure", a.Level)
		}
	}
	return ""
}

// checkStepResultsLocked cross-checks stepResults against the steps the
// client reported through WorkflowStepsUpdate.
func (s *Server) checkStepResultsLocked(j *Job, srs []wireStepResult) string {
	seen := map[string]bool{}
	for _, sr := range srs {
		if seen[sr.ExternalID] {
			return fmt.Sprintf("stepResults: external_id %s appears twice", sr.ExternalID)
		}
		seen[sr.ExternalID] = true
		if st, ok := j.stepState[sr.ExternalID]; ok && st.Number != *sr.Number {
			return fmt.Sprintf("stepResults: step %s has number %d but was reported as %d", sr.ExternalID, *sr.Number, st.Number)
		}
	}
	return ""
}

func (s *Server) storeCompletion(j *Job, req *completeJobRequest) {
	res := &j.result
	res.Conclusion = *req.Conclusion
	res.CompletedAt = time.Now()
	res.Outputs = map[string]Variable{}
	for k, v := range req.Outputs {
		val := ""
		if v.Value != nil {
			val = *v.Value
		}
		res.Outputs[k] = Variable{Value: val, IsSecret: v.IsSecret}
	}
	res.Annotations = convertAnnotations(req.Annotations)
	for _, sr := range req.StepResults {
		res.StepResults = append(res.StepResults, StepResult{
			ExternalID: sr.ExternalID, Number: *sr.Number, Name: sr.Name,
			Status: deref(sr.Status), Conclusion: deref(sr.Conclusion),
			StartedAt: deref(sr.StartedAt), CompletedAt: deref(sr.CompletedAt),
			Annotations: convertAnnotations(sr.Annotations),
		})
	}
}

func convertAnnotations(as []wireAnnotation) []Annotation {
	var out []Annotation
	for _, a := range as {
		out = append(out, Annotation{Level: a.Level, Message: a.Message, Title: a.Title, Path: a.Path, StartLine: a.StartLine, EndLine: a.EndLine})
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func quoteOpt(p *string) string {
	if p == nil {
		return "<missing>"
	}
	return fmt.Sprintf("%q", *p)
}
