package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// jobJSON is an AgentJobRequestMessage as acquirejob returns it (shape per
// AgentJobRequestMessage.cs and the token/context converters).
const jobJSON = `{
 "messageType": "RunnerJobRequest",
 "plan": {"scopeIdentifier": "00000000-0000-0000-0000-000000000000", "planType": "actions", "version": 1, "planId": "7f1c0000-0000-0000-0000-0000000000aa"},
 "timeline": {"id": "7f1c0000-0000-0000-0000-0000000000aa", "changeId": 1},
 "jobId": "a1b2c3d4-0000-0000-0000-000000000001",
 "jobDisplayName": "build", "jobName": "__default", "requestId": 0,
 "lockedUntil": "0001-01-01T00:00:00",
 "resources": {"endpoints": [{
   "id": "00000000-0000-0000-0000-000000000000", "name": "SystemVssConnection", "type": "ExternalTfs",
   "url": "RUNURL", "authorization": {"parameters": {"AccessToken": "jobtok"}, "scheme": "OAuth"},
   "isShared": false, "isReady": true,
   "data": {"ServerId": "x", "FeedStreamUrl": "FEEDURL", "ResultsServiceUrl": "RESULTSURL"}}]},
 "contextData": {
   "github": {"t": 2, "d": [{"k": "repository", "v": "o/r"}, {"k": "run_number", "v": {"t": 4, "n": 12}},
      {"k": "event", "v": {"t": 2, "d": [{"k": "forced", "v": {"t": 3, "b": false}}, {"k": "commits", "v": {"t": 1, "a": ["c1", {"t": 0, "s": "c2"}]}}]}}]},
   "matrix": {"t": 2, "d": [{"k": "os", "v": "illumos"}, {"k": "n", "v": 3}]},
   "inputs": null},
 "variables": {
   "system.github.token": {"value": "ghs_x", "isSecret": true},
   "system.github.results_endpoint": {"value": "RESULTSURL"},
   "MY_SECRET": {"value": "s3cret", "isSecret": true}},
 "mask": [{"type": "regex", "value": "abc.*"}, {"type": 1, "value": "s3cret"}],
 "steps": [{
   "type": "action", "reference": {"type": "script"}, "id": "5b3a0000-0000-0000-0000-0000000000b1",
   "name": "__run", "contextName": "__run",
   "displayNameToken": {"type": 3, "expr": "format('Run {0}', matrix.os)"},
   "condition": "success()",
   "environment": {"type": 2, "map": [{"Key": "A", "Value": "1"}, {"Key": "B", "Value": {"type": 3, "expr": "matrix.os"}}]},
   "inputs": {"type": 2, "map": [
     {"Key": "script", "Value": {"type": 0, "file": 1, "line": 12, "col": 14, "lit": "echo hi\nuname -a"}},
     {"Key": "shell", "Value": "bash"},
     {"Key": "workingDirectory", "Value": {"type": 3, "expr": "github.workspace"}}]},
   "continueOnError": false, "timeoutInMinutes": 10},
  {"type": "action", "reference": {"type": 1, "name": "actions/checkout", "ref": "v4", "repositoryType": "GitHub"},
   "id": "5b3a0000-0000-0000-0000-0000000000b2", "name": "__actions_checkout", "condition": "success()"}],
 "environmentVariables": [{"type": 2, "map": [{"Key": "CI", "Value": "true"}]}],
 "defaults": [{"type": 2, "map": [{"Key": "run", "Value": {"type": 2, "map": [{"Key": "shell", "Value": "bash"}]}}]}],
 "jobOutputs": {"type": 2, "map": [{"Key": "out", "Value": {"type": 3, "expr": "steps.s.outputs.x"}}]},
 "fileTable": [".github/workflows/ci.yml"],
 "billingOwnerId": "owner-1",
 "someFutureField": {"x": 1}
}`

func jobMessage(t *testing.T, run, results, feed string) *JobMessage {
	t.Helper()
	s := strings.NewReplacer("RUNURL", run, "RESULTSURL", results, "FEEDURL", feed).Replace(jobJSON)
	var m JobMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestAcquireJob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		gone   bool
	}{
		{"ok", 200, jobJSON, false},
		{"404", 404, `{}`, true},
		{"409", 409, `{}`, true},
		{"422", 422, `{}`, true},
		{"run-service body", 400, `{"source":"actions-run-service","statusCode":409,"errorMessage":"taken"}`, true},
		{"500", 500, `oops`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			req := &RunnerJobRequest{RunnerRequestID: "rr-1", RunServiceURL: env.srv.URL + "/run/", BillingOwnerID: "b1"}
			m, err := env.client.AcquireJob(context.Background(), req, "")
			if errors.Is(err, ErrJobGone) != tc.gone || (tc.status == 200) != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (m.JobID != "a1b2c3d4-0000-0000-0000-000000000001" || len(m.Raw) == 0) {
				t.Errorf("job %+v", m)
			}
			r := env.brokerRequests()[0]
			b := r.json(t)
			if r.Path != "/run/acquirejob" || b["jobMessageId"] != "rr-1" || b["runnerOS"] != "Linux" || b["billingOwnerId"] != "b1" ||
				r.Header.Get("Authorization") != "Bearer tok1" {
				t.Errorf("acquire %s %s %v", r.Path, r.Body, r.Header)
			}
		})
	}
}

func TestJobMessageAccessors(t *testing.T) {
	m := jobMessage(t, "https://run.example/x/", "https://results.example/", "wss://feed.example/f")
	if m.JobToken() != "jobtok" || m.ResultsURL() != "https://results.example/" || m.FeedURL() != "wss://feed.example/f" {
		t.Errorf("accessors: %q %q %q", m.JobToken(), m.ResultsURL(), m.FeedURL())
	}
	if m.Plan.PlanID != "7f1c0000-0000-0000-0000-0000000000aa" || m.BillingOwnerID != "owner-1" || len(m.Steps) != 2 {
		t.Errorf("message %+v", m)
	}
	if m.Mask[0].Type != "regex" || m.Mask[1].Type != "variable" {
		t.Errorf("mask types %q %q", m.Mask[0].Type, m.Mask[1].Type)
	}
	if !m.Steps[0].Reference.IsScript() || m.Steps[1].Reference.Type != ReferenceRepository || m.Steps[1].Reference.Name != "actions/checkout" {
		t.Errorf("references %+v %+v", m.Steps[0].Reference, m.Steps[1].Reference)
	}
	if v, ok := m.Variable("SYSTEM.GITHUB.TOKEN"); !ok || !v.IsSecret {
		t.Error("variables are case-insensitive")
	}
}

func TestRenewAndComplete(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		switch r.Path {
		case "/sys/renewjob":
			writeJSON(w, 200, map[string]any{"lockedUntil": "2026-08-20T10:11:12.1234567Z"})
		case "/sys/completejob":
			w.WriteHeader(200)
		default:
			writeJSON(w, 404, map[string]any{"source": "actions-run-service", "statusCode": 404, "errorMessage": "nope"})
		}
	})
	m := jobMessage(t, srv.URL+"/sys/", "", "")
	j, err := NewJobClient(m, srv.URL+"/ignored/", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	lu, err := j.RenewJob(context.Background())
	if err != nil || !lu.Equal(time.Date(2026, 8, 20, 10, 11, 12, 123456700, time.UTC)) {
		t.Fatalf("renew: %v %v", lu, err)
	}
	start := time.Date(2026, 8, 20, 10, 0, 0, 0, time.UTC)
	end := start.Add(1500 * time.Millisecond)
	err = j.CompleteJob(context.Background(), CompleteJobRequest{
		Conclusion: ResultFailed,
		Outputs:    map[string]VariableValue{"out": {Value: "v"}},
		StepResults: []StepResult{{ExternalID: "5b3a0000-0000-0000-0000-0000000000b1", Number: 1, Name: "Run x",
			Status: StatusCompleted, Conclusion: ConclusionFailure, StartedAt: &start, CompletedAt: &end,
			Annotations: []Annotation{{Level: AnnotationFailure, Message: "exit 1", StepNumber: 1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if reqs[0].json(t)["planId"] != m.Plan.PlanID || reqs[0].json(t)["jobId"] != m.JobID || reqs[0].Header.Get("Authorization") != "Bearer jobtok" {
		t.Errorf("renew body %s", reqs[0].Body)
	}
	checkCompleteBody(t, reqs[1].json(t), m)
	j.runURL = srv.URL + "/gone/"
	if _, err := j.RenewJob(context.Background()); !errors.Is(err, ErrJobGone) {
		t.Errorf("renew 404: %v", err)
	}
}

func checkCompleteBody(t *testing.T, b map[string]any, m *JobMessage) {
	t.Helper()
	if b["planId"] != m.Plan.PlanID || b["jobId"] != m.JobID || b["conclusion"] != "failed" || b["billingOwnerId"] != "owner-1" {
		t.Errorf("complete body %v", b)
	}
	if out := b["outputs"].(map[string]any)["out"].(map[string]any); out["value"] != "v" || out["isSecret"] != false {
		t.Errorf("outputs %v", out)
	}
	sr := b["stepResults"].([]any)[0].(map[string]any)
	if sr["external_id"] != "5b3a0000-0000-0000-0000-0000000000b1" || sr["number"] != float64(1) || sr["status"] != "completed" ||
		sr["conclusion"] != "failed" || sr["started_at"] != "2026-08-20T10:00:00Z" || sr["completed_at"] != "2026-08-20T10:00:01.5Z" {
		t.Errorf("step result %v", sr)
	}
	if a := sr["annotations"].([]any)[0].(map[string]any); a["level"] != "failure" || a["message"] != "exit 1" || a["stepNumber"] != float64(1) {
		t.Errorf("annotation %v", a)
	}
}

func TestStepResultWire(t *testing.T) {
	for _, tc := range []struct {
		st         StepStatus
		c          Conclusion
		wantStatus any
		wantConcl  any
	}{
		{StatusCompleted, ConclusionSuccess, "completed", "succeeded"},
		{StatusCompleted, ConclusionCancelled, "completed", "canceled"},
		{StatusCompleted, ConclusionSkipped, "completed", "skipped"},
		{StatusInProgress, ConclusionUnknown, "inProgress", nil},
		{StatusPending, ConclusionUnknown, "pending", nil},
	} {
		b, _ := json.Marshal(StepResult{ExternalID: "x", Status: tc.st, Conclusion: tc.c})
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if m["status"] != tc.wantStatus || m["conclusion"] != tc.wantConcl {
			t.Errorf("%d/%d: %s", tc.st, tc.c, b)
		}
	}
	m := jobMessage(t, "https://r/", "", "")
	if !m.LockedUntil.Equal(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("lockedUntil %v", m.LockedUntil)
	}
}
