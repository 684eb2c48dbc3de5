package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Results-service twirp routes (ResultsHttpClient.cs Constants).
const (
	twirpReceiver          = "twirp/results.services.receiver.Receiver/"
	routeStepsUpdate       = "twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate"
	routeStepLogsURL       = twirpReceiver + "GetStepLogsSignedBlobURL"
	routeStepLogsMetadata  = twirpReceiver + "CreateStepLogsMetadata"
	routeJobLogsURL        = twirpReceiver + "GetJobLogsSignedBlobURL"
	routeJobLogsMetadata   = twirpReceiver + "CreateJobLogsMetadata"
	blobStorageAzure       = "BLOB_STORAGE_TYPE_AZURE"
	resultsTimestampLayout = "2006-01-02T15:04:05.000Z07:00" // yyyy-MM-dd'T'HH:mm:ss.fffK
	logBlockSize           = 2 << 20                         // PagingLogger.BlockSize
	maxAppendBlock         = 4 << 20                         // Azure append-block limit
)

// StepStatus is the results-service step status (Contracts.cs Status).
type StepStatus int

// Step statuses.
const (
	StatusUnknown    StepStatus = 0
	StatusInProgress StepStatus = 3
	StatusPending    StepStatus = 5
	StatusCompleted  StepStatus = 6
)

// Conclusion is the results-service step conclusion (Contracts.cs).
type Conclusion int

// Conclusions.
const (
	ConclusionUnknown   Conclusion = 0
	ConclusionSuccess   Conclusion = 2
	ConclusionFailure   Conclusion = 3
	ConclusionCancelled Conclusion = 4
	ConclusionSkipped   Conclusion = 7
)

// StepUpdate is one step of WorkflowStepsUpdate (Contracts.cs Step).
type StepUpdate struct {
	ExternalID  string
	Number      int
	Name        string
	Status      StepStatus
	StartedAt   *time.Time
	CompletedAt *time.Time
	Conclusion  Conclusion
}

type stepWire struct {
	ExternalID  string     `json:"external_id"`
	Number      int        `json:"number"`
	Name        string     `json:"name"`
	Status      StepStatus `json:"status"`
	StartedAt   *string    `json:"started_at"`
	CompletedAt *string    `json:"completed_at"`
	Conclusion  Conclusion `json:"conclusion"`
}

func resultsTime(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(resultsTimestampLayout)
	return &s
}

// twirp posts req to {results}/route with the job token and decodes resp.
func (j *JobClient) twirp(ctx context.Context, op, route string, req, resp any) error {
	if j.resultsURL == "" {
		return fmt.Errorf("%s: job message has no system.github.results_endpoint", op)
	}
	u, err := joinURL(j.resultsURL, route)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c, err := jsonCall(op, http.MethodPost, u, req)
	if err != nil {
		return err
	}
	r, err := j.send(ctx, c)
	if err != nil {
		return err
	}
	if !r.ok() {
		return c.errorFor(r)
	}
	return decode(op, r.body, resp)
}

// twirpOK is for calls answering CreateMetadataResponse {ok}; the runner
// fails when ok is false.
func (j *JobClient) twirpOK(ctx context.Context, op, route string, req any) error {
	var resp struct {
		Ok bool `json:"ok"`
	}
	if err := j.twirp(ctx, op, route, req, &resp); err != nil {
		return err
	}
	if !resp.Ok {
		return fmt.Errorf("%s: service answered ok=false", op)
	}
	return nil
}

// UpdateSteps: WorkflowStepUpdateService/WorkflowStepsUpdate with {steps,
// change_order, workflow_job_run_backend_id, workflow_run_backend_id}.
// changeOrder must increase with every call (the runner counts from 1).
func (j *JobClient) UpdateSteps(ctx context.Context, steps []StepUpdate, changeOrder int64) error {
	ws := make([]stepWire, len(steps))
	for i, s := range steps {
		ws[i] = stepWire{ExternalID: s.ExternalID, Number: s.Number, Name: s.Name, Status: s.Status,
			StartedAt: resultsTime(s.StartedAt), CompletedAt: resultsTime(s.CompletedAt), Conclusion: s.Conclusion}
	}
	req := map[string]any{
		"steps": ws, "change_order": changeOrder,
		"workflow_job_run_backend_id": j.msg.JobID, "workflow_run_backend_id": j.msg.Plan.PlanID,
	}
	return j.twirpOK(ctx, "protocol: update steps", routeStepsUpdate, req)
}

// logTarget describes a step log or the job log.
type logTarget struct {
	what                string
	urlRoute, metaRoute string
	stepID              string // "" for the job log
}

func (t logTarget) ids(j *JobClient) map[string]any {
	m := map[string]any{"workflow_run_backend_id": j.msg.Plan.PlanID, "workflow_job_run_backend_id": j.msg.JobID}
	if t.stepID != "" {
		m["step_backend_id"] = t.stepID
	}
	return m
}

// UploadStepLog uploads a finished step's log and records its metadata,
// as the official runner does (see uploadLog).
func (j *JobClient) UploadStepLog(ctx context.Context, stepID string, log []byte, lineCount int64) error {
	if stepID == "" {
		return errors.New("protocol: upload step log: empty step id")
	}
	t := logTarget{what: "step log", urlRoute: routeStepLogsURL, metaRoute: routeStepLogsMetadata, stepID: stepID}
	return j.uploadLog(ctx, t, log, lineCount)
}

// UploadJobLog uploads the job log the same way through the job-log routes.
func (j *JobClient) UploadJobLog(ctx context.Context, log []byte, lineCount int64) error {
	t := logTarget{what: "job log", urlRoute: routeJobLogsURL, metaRoute: routeJobLogsMetadata}
	return j.uploadLog(ctx, t, log, lineCount)
}

// uploadLog mirrors PagingLogger + ResultsHttpClient: the log is cut into
// blocks of about 2 MiB at line ends (never above 4 MiB); for every block
// a signed URL is requested; a single block is PUT as a block blob,
// otherwise an append blob is created, each block appended, and the last
// one sealed; then Create*Metadata gets uploaded_at and line_count. An
// empty log uploads nothing (the runner writes no block for it).
func (j *JobClient) uploadLog(ctx context.Context, t logTarget, log []byte, lineCount int64) error {
	blocks := splitLog(log)
	for i, b := range blocks {
		if err := j.uploadBlock(ctx, t, b, i == 0, i == len(blocks)-1); err != nil {
			return err
		}
	}
	if len(blocks) == 0 {
		return nil
	}
	req := t.ids(j)
	req["uploaded_at"] = time.Now().UTC().Format(resultsTimestampLayout)
	req["line_count"] = lineCount
	return j.twirpOK(ctx, "protocol: create "+t.what+" metadata", t.metaRoute, req)
}

func (j *JobClient) uploadBlock(ctx context.Context, t logTarget, block []byte, first, last bool) error {
	var signed struct {
		LogsURL         string `json:"logs_url"`
		BlobStorageType string `json:"blob_storage_type"`
	}
	op := "protocol: get " + t.what + " upload URL"
	if err := j.twirp(ctx, op, t.urlRoute, t.ids(j), &signed); err != nil {
		return err
	}
	if signed.LogsURL == "" {
		return fmt.Errorf("%s: empty logs_url", op)
	}
	b := blob{url: signed.LogsURL, azure: signed.BlobStorageType == blobStorageAzure, hc: j.hc, ua: j.ua(), what: t.what}
	if first && last {
		return b.putBlockBlob(ctx, block)
	}
	if first {
		if err := b.createAppendBlob(ctx); err != nil {
			return err
		}
	}
	return b.appendBlock(ctx, block, last)
}

// splitLog cuts log into blocks the way PagingLogger does: a block is
// closed after the line that makes it reach logBlockSize; a block is never
// longer than maxAppendBlock (over-long lines are split).
func splitLog(log []byte) [][]byte {
	var out [][]byte
	for len(log) > 0 {
		n := blockEnd(log)
		out = append(out, log[:n])
		log = log[n:]
	}
	return out
}

func blockEnd(log []byte) int {
	if len(log) <= logBlockSize {
		return len(log)
	}
	if i := bytes.IndexByte(log[logBlockSize-1:], '\n'); i >= 0 && logBlockSize+i <= maxAppendBlock {
		return logBlockSize + i
	}
	return min(len(log), maxAppendBlock)
}

// blob is a signed blob URL (no Authorization header; the URL carries SAS).
type blob struct {
	url   string
	azure bool
	hc    *http.Client
	ua    string
	what  string
}

func (b blob) put(ctx context.Context, op, u string, body []byte, h http.Header) error {
	c := call{op: op, method: http.MethodPut, url: u, body: body, header: h}
	r, err := c.do(ctx, b.hc, b.ua, "")
	if err != nil {
		return err
	}
	if !r.ok() {
		return c.errorFor(r)
	}
	return nil
}

// putBlockBlob: PUT url, x-ms-blob-type: BlockBlob (Azure only),
// Content-Type: text/plain.
func (b blob) putBlockBlob(ctx context.Context, data []byte) error {
	h := http.Header{"Content-Type": {"text/plain"}}
	if b.azure {
		h.Set("x-ms-blob-type", "BlockBlob")
	}
	return b.put(ctx, "protocol: upload "+b.what+" blob", b.url, data, h)
}

// createAppendBlob: PUT url, empty, x-ms-blob-type: AppendBlob (Azure
// only), Content-Type: text/plain.
func (b blob) createAppendBlob(ctx context.Context) error {
	h := http.Header{"Content-Type": {"text/plain"}}
	if b.azure {
		h.Set("x-ms-blob-type", "AppendBlob")
	}
	return b.put(ctx, "protocol: create "+b.what+" append blob", b.url, []byte{}, h)
}

// appendBlock: PUT url&comp=appendblock[&seal=true] with x-ms-blob-sealed:
// True|False (Azure only; .NET bool text).
func (b blob) appendBlock(ctx context.Context, data []byte, seal bool) error {
	u := b.url + sep(b.url) + "comp=appendblock"
	if seal {
		u += "&seal=true"
	}
	h := http.Header{}
	if b.azure {
		h.Set("x-ms-blob-sealed", dotNetBool(seal))
	}
	return b.put(ctx, "protocol: append "+b.what+" block", u, data, h)
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

func dotNetBool(v bool) string {
	s := strconv.FormatBool(v)
	return string(s[0]-'a'+'A') + s[1:]
}
