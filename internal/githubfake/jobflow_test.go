package githubfake

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

type acquired struct {
	token, planID, jobID, runURL, resultsURL, feedURL string
	stepIDs                                           []string
	raw                                               map[string]any
}

// acquire polls for a job, acknowledges and acquires it.
func acquire(t *testing.T, c *tc) acquired {
	t.Helper()
	r := c.poll("Online")
	var m brokerMessage
	r.json(t, &m)
	if m.MessageType != "RunnerJobRequest" {
		t.Fatalf("poll: %d %s", r.status, r.body)
	}
	var ref struct {
		ID              string `json:"id"`
		RunnerRequestID string `json:"runner_request_id"`
		RunServiceURL   string `json:"run_service_url"`
		ShouldAck       bool   `json:"should_acknowledge"`
	}
	if err := json.Unmarshal([]byte(m.Body), &ref); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"sessionId": {c.session}, "status": {"Online"}, "runnerVersion": {"2.336.0"}, "os": {"Linux"}, "architecture": {"X64"}}
	if r := do(t, "POST", c.s.BrokerURL()+"acknowledge?"+q.Encode(), c.auth(), map[string]string{"runnerRequestId": ref.RunnerRequestID}); r.status != 200 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	r = do(t, "POST", ref.RunServiceURL+"acquirejob", c.auth(), map[string]string{"jobMessageId": ref.RunnerRequestID, "runnerOS": "Linux", "billingOwnerId": ""})
	if r.status != 200 {
		t.Fatalf("acquire: %d %s", r.status, r.body)
	}
	var msg struct {
		MessageType string `json:"messageType"`
		JobID       string `json:"jobId"`
		Plan        struct {
			PlanID string `json:"planId"`
		} `json:"plan"`
		Resources struct {
			Endpoints []struct {
				Name          string            `json:"name"`
				URL           string            `json:"url"`
				Data          map[string]string `json:"data"`
				Authorization struct {
					Parameters map[string]string `json:"parameters"`
				} `json:"authorization"`
			} `json:"endpoints"`
		} `json:"resources"`
		Variables map[string]struct {
			Value string `json:"value"`
		} `json:"variables"`
		Steps []struct {
			ID string `json:"id"`
		} `json:"steps"`
	}
	r.json(t, &msg)
	out := acquired{planID: msg.Plan.PlanID, jobID: msg.JobID, resultsURL: msg.Variables["system.github.results_endpoint"].Value}
	ep := msg.Resources.Endpoints[0]
	out.token, out.runURL, out.feedURL = ep.Authorization.Parameters["AccessToken"], ep.URL, ep.Data["FeedStreamUrl"]
	for _, st := range msg.Steps {
		out.stepIDs = append(out.stepIDs, st.ID)
	}
	r.json(t, &out.raw)
	return out
}

func (a acquired) hdr() map[string]string {
	return map[string]string{"Authorization": "Bearer " + a.token}
}

func (a acquired) twirp(t *testing.T, method string, body any) resp {
	t.Helper()
	svc := "results.services.receiver.Receiver/"
	if method == "WorkflowStepsUpdate" {
		svc = "github.actions.results.api.v1.WorkflowStepUpdateService/"
	}
	return do(t, "POST", a.resultsURL+"twirp/"+svc+method, a.hdr(), body)
}

func (a acquired) step(id string, number, status, conclusion int) map[string]any {
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	st := map[string]any{"external_id": id, "number": number, "name": "Run echo", "status": status,
		"started_at": now, "completed_at": nil, "conclusion": conclusion}
	if status == 6 {
		st["completed_at"] = now
	}
	return st
}

func (a acquired) stepsUpdate(order int, steps ...map[string]any) map[string]any {
	return map[string]any{"steps": steps, "change_order": order,
		"workflow_job_run_backend_id": a.jobID, "workflow_run_backend_id": a.planID}
}

// uploadStepLog does what the official runner's raw-HTTP path does.
func (a acquired) uploadStepLog(t *testing.T, stepID string, blocks ...string) {
	t.Helper()
	r := a.twirp(t, "GetStepLogsSignedBlobURL", map[string]string{
		"workflow_job_run_backend_id": a.jobID, "workflow_run_backend_id": a.planID, "step_backend_id": stepID})
	var u struct {
		LogsURL   string `json:"logs_url"`
		Type      string `json:"blob_storage_type"`
		SoftLimit string `json:"soft_size_limit"`
	}
	r.json(t, &u)
	if u.Type != "BLOB_STORAGE_TYPE_AZURE" || u.SoftLimit == "" {
		t.Fatalf("signed url: %s", r.body)
	}
	if r := do(t, "PUT", u.LogsURL, map[string]string{"x-ms-blob-type": "AppendBlob"}, ""); r.status != 201 {
		t.Fatalf("create blob: %d %s", r.status, r.body)
	}
	for i, b := range blocks {
		comp, seal := "&comp=appendblock", "False"
		if i == len(blocks)-1 {
			comp, seal = "&comp=appendblock&seal=true", "True"
		}
		if r := do(t, "PUT", u.LogsURL+comp, map[string]string{"x-ms-blob-sealed": seal}, b); r.status != 201 {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
	}
}

func (a acquired) logsMetadata(t *testing.T, stepID string, lines int) resp {
	return a.twirp(t, "CreateStepLogsMetadata", map[string]any{
		"workflow_run_backend_id": a.planID, "workflow_job_run_backend_id": a.jobID, "step_backend_id": stepID,
		"uploaded_at": time.Now().UTC().Format(time.RFC3339Nano), "line_count": lines})
}

func TestFullJobFlow(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	other, oid, oname := jitClient(t, s, s.JITConfig("linux-runner", []string{"linux"}))
	other.authenticate()
	other.openSession(oid, oname)
	c, id, name := jitClient(t, s, s.JITConfig("illumos-runner", []string{"self-hosted", "illumos"}))
	c.authenticate()
	c.openSession(id, name)
	job := s.QueueJob(JobSpec{
		Name: "build", Labels: []string{"illumos"},
		Steps: []Step{
			{Uses: "actions/checkout@v4", With: map[string]string{"fetch-depth": "1"}},
			{Run: "echo ${{ matrix.os }}", Shell: "bash", Env: map[string]string{"A": "b"}},
		},
		ContextData: map[string]any{"matrix": map[string]any{"os": "illumos"}},
		Secrets:     map[string]string{"TOKEN": "s3cret"},
	})
	if r := other.poll("Online"); r.status != 202 {
		t.Fatalf("linux runner got %d %s", r.status, r.body)
	}
	a := acquire(t, c)
	checkJobMessage(t, s, a)
	if r := do(t, "POST", a.runURL+"renewjob", a.hdr(), map[string]string{"planId": a.planID, "jobId": a.jobID}); r.status != 200 {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	s1, s2 := a.stepIDs[0], a.stepIDs[1]
	for i, upd := range [][]map[string]any{
		{a.step(s1, 1, 3, 0), a.step(s2, 2, 5, 0)},
		{a.step(s1, 1, 6, 2), a.step(s2, 2, 3, 0)},
		{a.step(s2, 2, 6, 3)},
	} {
		if r := a.twirp(t, "WorkflowStepsUpdate", a.stepsUpdate(i+1, upd...)); r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
			t.Fatalf("steps update %d: %d %s", i, r.status, r.body)
		}
	}
	a.uploadStepLog(t, s2, "line 1\nline 2\n", "line 3\n")
	if r := a.logsMetadata(t, s2, 3); r.status != 200 {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	complete := map[string]any{"planId": a.planID, "jobId": a.jobID, "conclusion": "failed",
		"outputs":     map[string]any{"x": map[string]any{"value": "1"}},
		"stepResults": []map[string]any{{"external_id": s2, "number": 2, "name": "Run echo", "status": "completed", "conclusion": "failed"}}}
	if r := do(t, "POST", a.runURL+"completejob", a.hdr(), complete); r.status != 200 {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	noRejections(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := job.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Conclusion != "failed" || res.Outputs["x"].Value != "1" || len(res.StepUpdates) != 3 || res.Runner != "illumos-runner" {
		t.Errorf("result = %+v", res)
	}
	if len(res.Steps) != 2 || res.Steps[0].Conclusion != 2 || res.Steps[1].Conclusion != 3 {
		t.Errorf("steps = %+v", res.Steps)
	}
	if l := res.StepLogs[s2]; l.LineCount != 3 || l.Text != "line 1\nline 2\nline 3\n" {
		t.Errorf("log = %+v", l)
	}
	if len(res.Renewals) != 1 {
		t.Errorf("renewals = %v", res.Renewals)
	}
	if r := do(t, "POST", a.runURL+"completejob", a.hdr(), complete); r.status != 404 {
		t.Fatalf("second complete: %d", r.status)
	}
	expectRejection(t, s, 0, "already completed")
}

func checkJobMessage(t *testing.T, s *Server, a acquired) {
	t.Helper()
	if a.resultsURL != s.ResultsURL() || a.runURL != s.RunServiceURL() || !strings.HasPrefix(a.feedURL, "ws://") || a.token == "" {
		t.Fatalf("message endpoints: %+v", a)
	}
	steps := a.raw["steps"].([]any)
	ref := steps[0].(map[string]any)["reference"].(map[string]any)
	if ref["type"] != "repository" || ref["name"] != "actions/checkout" || ref["ref"] != "v4" {
		t.Errorf("checkout reference = %v", ref)
	}
	run := steps[1].(map[string]any)
	if run["reference"].(map[string]any)["type"] != "script" || run["condition"] != "success()" {
		t.Errorf("run step = %v", run)
	}
	script := run["inputs"].(map[string]any)["map"].([]any)[0].(map[string]any)
	if script["Key"] != "script" || script["Value"].(map[string]any)["expr"] != "format('echo {0}', matrix.os)" {
		t.Errorf("script input = %v", script)
	}
	v := a.raw["variables"].(map[string]any)["TOKEN"].(map[string]any)
	if v["isSecret"] != true {
		t.Errorf("secret = %v", v)
	}
}

func TestResultsStrictness(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("r", nil))
	c.authenticate()
	c.openSession(id, name)
	s.QueueJob(JobSpec{Steps: []Step{{Run: "true"}, {Run: "false"}}})
	a := acquire(t, c)
	s1, s2 := a.stepIDs[0], a.stepIDs[1]
	if r := a.twirp(t, "WorkflowStepsUpdate", a.stepsUpdate(5, a.step(s1, 1, 3, 0))); r.status != 200 {
		t.Fatalf("baseline: %d %s", r.status, r.body)
	}
	camel := a.stepsUpdate(9, a.step(s1, 1, 3, 0))
	camel["changeOrder"] = camel["change_order"]
	delete(camel, "change_order")
	cases := []struct {
		name   string
		method string
		body   any
		reason string
	}{
		{"gar status enum", "WorkflowStepsUpdate", a.stepsUpdate(6, a.step(s1, 1, 1, 0)), "status 1"},
		{"bad conclusion", "WorkflowStepsUpdate", a.stepsUpdate(6, a.step(s1, 1, 6, 1)), "conclusion 1"},
		{"camelCase key", "WorkflowStepsUpdate", camel, "did you mean \"change_order\""},
		{"change_order not increasing", "WorkflowStepsUpdate", a.stepsUpdate(5, a.step(s1, 1, 3, 0)), "change_order"},
		{"number changed", "WorkflowStepsUpdate", a.stepsUpdate(7, a.step(s1, 2, 3, 0)), "changed number"},
		{"number reused", "WorkflowStepsUpdate", a.stepsUpdate(7, a.step(s2, 1, 3, 0)), "already used"},
		{"uppercase guid", "WorkflowStepsUpdate", a.stepsUpdate(7, a.step(strings.ToUpper(s1), 1, 3, 0)), "lowercase GUID"},
		{"metadata without blob", "CreateStepLogsMetadata", map[string]any{"workflow_run_backend_id": a.planID,
			"workflow_job_run_backend_id": a.jobID, "step_backend_id": s2, "uploaded_at": "2024-01-01T00:00:00.000Z", "line_count": 1}, "no blob"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Rejections())
			if r := a.twirp(t, tt.method, tt.body); r.status < 400 {
				t.Fatalf("accepted: %d %s", r.status, r.body)
			}
			expectRejection(t, s, before, tt.reason)
		})
	}
	a.uploadStepLog(t, s1, "a\nb")
	before := len(s.Rejections())
	if r := a.logsMetadata(t, s1, 1); r.status != 400 {
		t.Fatalf("line count mismatch accepted: %d", r.status)
	}
	expectRejection(t, s, before, "line_count 1 but the sealed blob has 2 lines")
	for _, bad := range []map[string]any{
		{"planId": a.planID, "jobId": a.jobID, "conclusion": "Succeeded"},
		{"planId": a.planID, "jobId": a.jobID, "conclusion": "success"},
		{"planId": a.planID, "jobId": a.jobID, "conclusion": "succeeded", "stepResults": []map[string]any{{"external_id": s1, "number": 1, "status": "Completed"}}},
		{"PlanId": a.planID, "jobId": a.jobID, "conclusion": "succeeded"},
	} {
		if r := do(t, "POST", a.runURL+"completejob", a.hdr(), bad); r.status != 400 {
			t.Errorf("completejob %v accepted: %d", bad, r.status)
		}
	}
	if r := do(t, "POST", a.runURL+"renewjob", c.auth(), map[string]string{"planId": a.planID, "jobId": a.jobID}); r.status != 401 {
		t.Errorf("renew with runner token: %d", r.status)
	}
}

func TestAppendBlobRules(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	u := s.signedBlobURL("steplogs/j/s")
	type call struct {
		method, url string
		hdr         map[string]string
		body        string
		want        int
	}
	appendBlock := func(body string, want int) call {
		return call{"PUT", u + "&comp=appendblock", nil, body, want}
	}
	cases := []struct {
		name  string
		calls []call
	}{
		{"append before create", []call{appendBlock("x", 404)}},
		{"create needs blob type", []call{{"PUT", u, nil, "", 400}}},
		{"append blob create must be empty", []call{{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob"}, "x", 400}}},
		{"no append after seal", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob"}, "", 201},
			{"PUT", u + "&comp=appendblock&seal=true", map[string]string{"x-ms-blob-sealed": "True"}, "a\n", 201},
			appendBlock("b\n", 409),
		}},
		{"sdk seal", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob", "If-None-Match": "*"}, "", 201},
			appendBlock("a\n", 201),
			{"PUT", u + "&comp=seal", nil, "", 200},
			appendBlock("b\n", 409),
		}},
		{"put blob replaces", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, "old", 201},
			{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob"}, "", 201},
			appendBlock("new", 201),
			{"GET", u, nil, "", 200},
		}},
		{"read back", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, "x", 201},
			{"GET", u, nil, "x", 200},
		}},
		{"if-none-match on existing", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob"}, "", 201},
			{"PUT", u, map[string]string{"x-ms-blob-type": "AppendBlob", "If-None-Match": "*"}, "", 409},
		}},
		{"append to block blob", []call{
			{"PUT", u, map[string]string{"x-ms-blob-type": "BlockBlob"}, "x", 201},
			appendBlock("y", 409),
		}},
		{"bad signature", []call{{"PUT", strings.Replace(u, "sig=", "sig=x", 1), map[string]string{"x-ms-blob-type": "AppendBlob"}, "", 403}}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			s.blobs = map[string]*blob{}
			s.mu.Unlock()
			for i, c := range tt.calls {
				body := c.body
				if c.method == "GET" {
					body = ""
				}
				r := do(t, c.method, c.url, c.hdr, body)
				if r.status != c.want {
					t.Fatalf("call %d %s: %d %s, want %d", i, c.url, r.status, r.body, c.want)
				}
				if c.method == "GET" && c.body != "" && string(r.body) != c.body {
					t.Fatalf("GET = %q, want %q", r.body, c.body)
				}
			}
		})
	}
}
