package githubfake

// Results service (twirp, JSON). Checked against actions/runner:
//   src/Sdk/WebApi/WebApi/ResultsHttpClient.cs (paths under
//     twirp/results.services.receiver.Receiver/ and
//     twirp/github.actions.results.api.v1.WorkflowStepUpdateService/,
//     Bearer job token, {"ok":true} expected from metadata and steps calls,
//     change_order counter, timestamp format yyyy-MM-dd'T'HH:mm:ss.fffK),
//   src/Sdk/WebApi/WebApi/Contracts.cs (snake_case field names; Status
//     0/3/5/6 and Conclusion 0/2/3/4/7 as numbers; BLOB_STORAGE_TYPE_AZURE).
// int64 fields are accepted as JSON numbers or strings (protojson) and
// written as strings (soft_size_limit), as a twirp server does.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	receiverPrefix    = "/results/twirp/results.services.receiver.Receiver/"
	stepsUpdatePath   = "/results/twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate"
	softSizeLimit     = 1 << 20
	blobStorageAzure  = "BLOB_STORAGE_TYPE_AZURE"
	twirpInvalid      = "invalid_argument"
	twirpNotFound     = "not_found"
	twirpPrecondition = "failed_precondition"
)

// int64JSON accepts a JSON number or a decimal string, as protojson does.
type int64JSON int64

func (n *int64JSON) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an int64: %s", b)
	}
	*n = int64JSON(v)
	return nil
}

type stepsUpdateRequest struct {
	Steps                   []wireStep `json:"steps"`
	ChangeOrder             int64JSON  `json:"change_order"`
	WorkflowJobRunBackendID string     `json:"workflow_job_run_backend_id"`
	WorkflowRunBackendID    string     `json:"workflow_run_backend_id"`
}

type wireStep struct {
	ExternalID               string   `json:"external_id"`
	Number                   int      `json:"number"`
	Name                     string   `json:"name"`
	Status                   int      `json:"status"`
	StartedAt                *string  `json:"started_at"`
	CompletedAt              *string  `json:"completed_at"`
	Conclusion               int      `json:"conclusion"`
	IsBackground             bool     `json:"is_background"`
	BackgroundControlType    string   `json:"background_control_type"`
	BackgroundControlStepIDs []string `json:"background_control_step_ids"`
	ParallelGroupID          string   `json:"parallel_group_id"`
}

// blobRequest covers every Get*SignedBlobURL and Create*Metadata body;
// which fields are allowed is checked per method.
type blobRequest struct {
	WorkflowRunBackendID    string     `json:"workflow_run_backend_id"`
	WorkflowJobRunBackendID string     `json:"workflow_job_run_backend_id"`
	StepBackendID           *string    `json:"step_backend_id"`
	UploadedAt              *string    `json:"uploaded_at"`
	LineCount               *int64JSON `json:"line_count"`
	Size                    *int64JSON `json:"size"`
}

// receiverMethod describes one Receiver RPC.
type receiverMethod struct {
	step     bool   // has step_backend_id
	metadata string // "" for a URL request, else "line_count" or "size"
	kind     string // blob kind
	urlField string // response field carrying the signed URL
}

var receiverMethods = map[string]receiverMethod{
	"GetStepLogsSignedBlobURL":    {step: true, kind: "steplogs", urlField: "logs_url"},
	"CreateStepLogsMetadata":      {step: true, metadata: "line_count", kind: "steplogs"},
	"GetJobLogsSignedBlobURL":     {kind: "joblogs", urlField: "logs_url"},
	"CreateJobLogsMetadata":       {metadata: "line_count", kind: "joblogs"},
	"GetStepSummarySignedBlobURL": {step: true, kind: "summaries", urlField: "summary_url"},
	"CreateStepSummaryMetadata":   {step: true, metadata: "size", kind: "summaries"},
	"GetJobDiagLogsSignedBlobURL": {kind: "diag", urlField: "diag_logs_url"},
}

func (s *Server) resultsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+stepsUpdatePath, s.handleStepsUpdate)
	mux.HandleFunc("POST "+receiverPrefix+"{method}", s.handleReceiver)
}

func (s *Server) twirpFail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.record(r, status, "results: "+msg)
	writeJSON(w, status, map[string]string{"code": code, "msg": msg})
}

// resultsPreamble checks content type and the job token and decodes v.
func (s *Server) resultsPreamble(w http.ResponseWriter, r *http.Request, v any) *Job {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.twirpFail(w, r, http.StatusNotFound, "bad_route", fmt.Sprintf("Content-Type %q, want application/json", ct))
		return nil
	}
	j := s.authJob(w, r)
	if j == nil {
		return nil
	}
	if err := decodeStrict(r, v); err != nil {
		s.twirpFail(w, r, http.StatusBadRequest, twirpInvalid, err.Error())
		return nil
	}
	return j
}

func (s *Server) handleStepsUpdate(w http.ResponseWriter, r *http.Request) {
	var req stepsUpdateRequest
	j := s.resultsPreamble(w, r, &req)
	if j == nil {
		return
	}
	if reason := validateSteps(req.Steps); reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, twirpInvalid, "WorkflowStepsUpdate: "+reason)
		return
	}
	s.mu.Lock()
	code, reason := s.applyStepsLocked(j, &req)
	s.mu.Unlock()
	if reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, code, "WorkflowStepsUpdate: "+reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

var (
	stepStatuses    = map[int]bool{0: true, 3: true, 5: true, 6: true}
	stepConclusions = map[int]bool{0: true, 2: true, 3: true, 4: true, 7: true}
)

func validateSteps(steps []wireStep) string {
	if len(steps) == 0 {
		return "steps is empty"
	}
	for i, st := range steps {
		if reason := validateStep(st); reason != "" {
			return fmt.Sprintf("steps[%d]: %s", i, reason)
		}
	}
	return ""
}

func validateStep(st wireStep) string {
	switch {
	case !isGUID(st.ExternalID):
		return fmt.Sprintf("external_id %q is not a lowercase GUID", st.ExternalID)
	case st.Number < 1:
		return fmt.Sprintf("number %d must be >= 1", st.Number)
	case st.Name == "":
		return "name is empty"
	case !stepStatuses[st.Status]:
		return fmt.Sprintf("status %d is not 0|3|5|6 (unknown|in_progress|pending|completed)", st.Status)
	case !stepConclusions[st.Conclusion]:
		return fmt.Sprintf("conclusion %d is not 0|2|3|4|7 (unknown|success|failure|cancelled|skipped)", st.Conclusion)
	case st.Status == 6 && st.Conclusion == 0:
		return "a completed step (status 6) needs a conclusion"
	case st.Status != 6 && st.Conclusion != 0:
		return fmt.Sprintf("conclusion %d on a step that is not completed (status %d)", st.Conclusion, st.Status)
	case st.Status == 6 && st.CompletedAt == nil:
		return "a completed step needs completed_at"
	}
	for _, ts := range []*string{st.StartedAt, st.CompletedAt} {
		if ts != nil {
			if _, err := time.Parse(time.RFC3339Nano, *ts); err != nil {
				return fmt.Sprintf("timestamp %q is not RFC 3339", *ts)
			}
		}
	}
	return ""
}

// applyStepsLocked checks ids, change_order and step consistency, then
// records the update. Returns a twirp code and reason on failure.
func (s *Server) applyStepsLocked(j *Job, req *stepsUpdateRequest) (string, string) {
	if req.WorkflowRunBackendID != j.planID || req.WorkflowJobRunBackendID != j.jobID {
		return twirpNotFound, fmt.Sprintf("workflow_run_backend_id/workflow_job_run_backend_id %s/%s do not match plan/job %s/%s",
			req.WorkflowRunBackendID, req.WorkflowJobRunBackendID, j.planID, j.jobID)
	}
	if j.expired {
		return twirpPrecondition, "job was abandoned"
	}
	if int64(req.ChangeOrder) <= j.lastChangeOrder {
		return twirpPrecondition, fmt.Sprintf("change_order %d does not increase (last %d)", req.ChangeOrder, j.lastChangeOrder)
	}
	if reason := j.checkStepConsistency(req.Steps); reason != "" {
		return twirpInvalid, reason
	}
	j.lastChangeOrder = int64(req.ChangeOrder)
	upd := StepsUpdate{ChangeOrder: int64(req.ChangeOrder)}
	for _, st := range req.Steps {
		state := StepState{
			ExternalID: st.ExternalID, Number: st.Number, Name: st.Name, Status: st.Status,
			Conclusion: st.Conclusion, StartedAt: deref(st.StartedAt), CompletedAt: deref(st.CompletedAt),
		}
		upd.Steps = append(upd.Steps, state)
		j.stepState[st.ExternalID] = &state
	}
	j.result.StepUpdates = append(j.result.StepUpdates, upd)
	return "", ""
}

// checkStepConsistency: an external_id keeps its number, a number
// belongs to one external_id, and a completed step stays completed.
func (j *Job) checkStepConsistency(steps []wireStep) string {
	byNumber := map[int]string{}
	for id, st := range j.stepState {
		byNumber[st.Number] = id
	}
	for _, st := range steps {
		if old, ok := j.stepState[st.ExternalID]; ok {
			if old.Number != st.Number {
				return fmt.Sprintf("step %s changed number %d -> %d", st.ExternalID, old.Number, st.Number)
			}
			if old.Status == 6 && (st.Status != 6 || st.Conclusion != old.Conclusion) {
				return fmt.Sprintf("step %s was already completed (conclusion %d); got status %d conclusion %d", st.ExternalID, old.Conclusion, st.Status, st.Conclusion)
			}
		}
		if id, ok := byNumber[st.Number]; ok && id != st.ExternalID {
			return fmt.Sprintf("number %d is already used by step %s", st.Number, id)
		}
		byNumber[st.Number] = st.ExternalID
	}
	return ""
}

func (s *Server) handleReceiver(w http.ResponseWriter, r *http.Request) {
	m, ok := receiverMethods[r.PathValue("method")]
	if !ok {
		s.twirpFail(w, r, http.StatusNotFound, "bad_route", "no such Receiver method "+r.PathValue("method"))
		return
	}
	var req blobRequest
	j := s.resultsPreamble(w, r, &req)
	if j == nil {
		return
	}
	if reason := checkBlobRequestShape(m, &req); reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, twirpInvalid, r.PathValue("method")+": "+reason)
		return
	}
	if req.WorkflowRunBackendID != j.planID || req.WorkflowJobRunBackendID != j.jobID {
		s.twirpFail(w, r, http.StatusNotFound, twirpNotFound, r.PathValue("method")+": backend ids do not match the job")
		return
	}
	name := blobName(m.kind, j.jobID, deref(req.StepBackendID))
	if m.metadata == "" {
		resp := map[string]string{m.urlField: s.signedBlobURL(name), "blob_storage_type": blobStorageAzure}
		if m.kind == "steplogs" || m.kind == "summaries" {
			resp["soft_size_limit"] = strconv.Itoa(softSizeLimit)
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if reason := s.storeMetadata(j, m, name, &req); reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, twirpPrecondition, r.PathValue("method")+": "+reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func checkBlobRequestShape(m receiverMethod, req *blobRequest) string {
	switch {
	case m.step && (req.StepBackendID == nil || !isGUID(*req.StepBackendID)):
		return "step_backend_id must be the step's lowercase GUID"
	case !m.step && req.StepBackendID != nil:
		return "unknown field \"step_backend_id\""
	case m.metadata == "" && (req.UploadedAt != nil || req.LineCount != nil || req.Size != nil):
		return "unexpected metadata fields in a signed-URL request"
	case m.metadata == "line_count" && (req.LineCount == nil || req.Size != nil):
		return "needs line_count (and no size)"
	case m.metadata == "size" && (req.Size == nil || req.LineCount != nil):
		return "needs size (and no line_count)"
	case m.metadata != "" && req.UploadedAt == nil:
		return "uploaded_at is missing"
	}
	if req.UploadedAt != nil {
		if _, err := time.Parse(time.RFC3339Nano, *req.UploadedAt); err != nil {
			return fmt.Sprintf("uploaded_at %q is not RFC 3339", *req.UploadedAt)
		}
	}
	return ""
}

// storeMetadata verifies the uploaded blob against the metadata and
// records it in the job result.
func (s *Server) storeMetadata(j *Job, m receiverMethod, name string, req *blobRequest) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[name]
	switch {
	case b == nil:
		return "no blob was uploaded to the signed URL"
	case b.typ == "AppendBlob" && !b.sealed:
		return "append blob is not sealed"
	}
	text := string(b.data)
	if m.metadata == "size" {
		if int64(*req.Size) != int64(len(b.data)) {
			return fmt.Sprintf("size %d but the blob has %d bytes", *req.Size, len(b.data))
		}
		j.result.StepSummaries[*req.StepBackendID] = text
		return ""
	}
	lines := countLines(b.data)
	if int64(*req.LineCount) != lines {
		return fmt.Sprintf("line_count %d but the sealed blob has %d lines", *req.LineCount, lines)
	}
	log := Log{Text: text, LineCount: lines}
	if m.step {
		j.result.StepLogs[*req.StepBackendID] = log
	} else {
		j.result.JobLog = &log
	}
	return ""
}

// countLines counts lines: newline-terminated ones plus a final
// unterminated one.
func countLines(b []byte) int64 {
	n := int64(strings.Count(string(b), "\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}
