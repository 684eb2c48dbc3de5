package protocol

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// resultsServer fakes twirp and an append-blob store.
type resultsServer struct {
	*recorder
	blob []byte
}

func newResultsServer(t *testing.T, storage string) *resultsServer {
	rs := &resultsServer{}
	rs.recorder = newRecorder(t, func(w http.ResponseWriter, r recorded) {
		switch {
		case strings.HasSuffix(r.Path, "SignedBlobURL"):
			writeJSON(w, 200, map[string]any{"logs_url": rs.URL + "/blob/log?sv=1&sig=abc", "blob_storage_type": storage})
		case strings.HasPrefix(r.Path, "/twirp/"):
			writeJSON(w, 200, map[string]any{"ok": true})
		case r.Path == "/blob/log" && strings.Contains(r.RawQuery, "comp=appendblock"):
			rs.blob = append(rs.blob, r.Body...)
			w.WriteHeader(201)
		case r.Path == "/blob/log":
			rs.blob = append([]byte(nil), r.Body...)
			w.WriteHeader(201)
		}
	})
	return rs
}

func newTestJobClient(t *testing.T, results string) *JobClient {
	m := jobMessage(t, "https://run.example/", results+"/", "")
	j, err := NewJobClient(m, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestUpdateSteps(t *testing.T) {
	rs := newResultsServer(t, "BLOB_STORAGE_TYPE_AZURE")
	j := newTestJobClient(t, rs.URL)
	start := time.Date(2026, 8, 20, 10, 0, 0, 123456789, time.UTC)
	err := j.UpdateSteps(context.Background(), []StepUpdate{
		{ExternalID: "s1", Number: 1, Name: "Set up job", Status: StatusCompleted, StartedAt: &start, CompletedAt: &start, Conclusion: ConclusionSuccess},
		{ExternalID: "s2", Number: 2, Name: "Run", Status: StatusInProgress, StartedAt: &start},
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := rs.requests()[0]
	if r.Path != "/twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate" ||
		r.Header.Get("Authorization") != "Bearer jobtok" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("request %s %v", r.Path, r.Header)
	}
	b := r.json(t)
	if b["change_order"] != float64(3) || b["workflow_job_run_backend_id"] != "a1b2c3d4-0000-0000-0000-000000000001" ||
		b["workflow_run_backend_id"] != "7f1c0000-0000-0000-0000-0000000000aa" {
		t.Errorf("body %v", b)
	}
	steps := b["steps"].([]any)
	s1, s2 := steps[0].(map[string]any), steps[1].(map[string]any)
	if s1["external_id"] != "s1" || s1["status"] != float64(6) || s1["conclusion"] != float64(2) || s1["started_at"] != "2026-08-20T10:00:00.123Z" {
		t.Errorf("step 1 %v", s1)
	}
	if s2["status"] != float64(3) || s2["conclusion"] != float64(0) || s2["completed_at"] != nil {
		t.Errorf("step 2 %v", s2)
	}
	if _, ok := s2["completed_at"]; !ok {
		t.Error("completed_at must be sent as null, as the runner does")
	}
}

func TestUploadStepLogSingleBlock(t *testing.T) {
	rs := newResultsServer(t, "BLOB_STORAGE_TYPE_AZURE")
	j := newTestJobClient(t, rs.URL)
	log := []byte("2026-08-20T10:00:00.0000000Z hello\n")
	if err := j.UploadStepLog(context.Background(), "step-1", log, 1); err != nil {
		t.Fatal(err)
	}
	reqs := rs.requests()
	if len(reqs) != 3 {
		t.Fatalf("want 3 requests, got %d", len(reqs))
	}
	if b := reqs[0].json(t); reqs[0].Path != "/twirp/results.services.receiver.Receiver/GetStepLogsSignedBlobURL" ||
		b["step_backend_id"] != "step-1" || b["workflow_run_backend_id"] == nil || b["workflow_job_run_backend_id"] == nil {
		t.Errorf("signed URL request %s %v", reqs[0].Path, b)
	}
	put := reqs[1]
	if put.Method != "PUT" || put.Header.Get("x-ms-blob-type") != "BlockBlob" || put.Header.Get("Content-Type") != "text/plain" ||
		put.Header.Get("Authorization") != "" || put.RawQuery != "sv=1&sig=abc" || !bytes.Equal(rs.blob, log) {
		t.Errorf("block blob put %v %q", put.Header, put.RawQuery)
	}
	meta := reqs[2].json(t)
	if reqs[2].Path != "/twirp/results.services.receiver.Receiver/CreateStepLogsMetadata" || meta["line_count"] != float64(1) ||
		meta["step_backend_id"] != "step-1" || len(meta["uploaded_at"].(string)) != len("2026-08-20T10:00:00.000Z") {
		t.Errorf("metadata %v", meta)
	}
}

func TestUploadJobLogAppendBlob(t *testing.T) {
	rs := newResultsServer(t, "BLOB_STORAGE_TYPE_AZURE")
	j := newTestJobClient(t, rs.URL)
	line := strings.Repeat("x", 1023) + "\n"
	log := []byte(strings.Repeat(line, 5000)) // ~4.9 MiB: three blocks
	if err := j.UploadJobLog(context.Background(), log, 5000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rs.blob, log) {
		t.Fatalf("blob content differs: %d bytes vs %d", len(rs.blob), len(log))
	}
	var puts []recorded
	for _, r := range rs.requests() {
		if r.Method == "PUT" {
			puts = append(puts, r)
		}
		if strings.Contains(r.Path, "StepLogs") {
			t.Errorf("job log used step route %s", r.Path)
		}
	}
	if len(puts) != 4 {
		t.Fatalf("want create + 3 appends, got %d PUTs", len(puts))
	}
	if puts[0].Header.Get("x-ms-blob-type") != "AppendBlob" || len(puts[0].Body) != 0 || puts[0].Header.Get("Content-Length") != "" && puts[0].Header.Get("Content-Length") != "0" {
		t.Errorf("create %v", puts[0].Header)
	}
	for i, p := range puts[1:] {
		last := i == 2
		if !strings.Contains(p.RawQuery, "comp=appendblock") || strings.Contains(p.RawQuery, "seal=true") != last ||
			p.Header.Get("x-ms-blob-sealed") != map[bool]string{true: "True", false: "False"}[last] || len(p.Body) > 4<<20 {
			t.Errorf("append %d: %q %v (%d bytes)", i, p.RawQuery, p.Header, len(p.Body))
		}
		if !last && (len(p.Body) < 2<<20 || p.Body[len(p.Body)-1] != '\n') {
			t.Errorf("append %d should end at a line end after 2 MiB: %d bytes", i, len(p.Body))
		}
	}
	last := rs.requests()[len(rs.requests())-1]
	if last.Path != "/twirp/results.services.receiver.Receiver/CreateJobLogsMetadata" || last.json(t)["line_count"] != float64(5000) {
		t.Errorf("metadata %s %s", last.Path, last.Body)
	}
}

func TestUploadNonAzure(t *testing.T) {
	rs := newResultsServer(t, "BLOB_STORAGE_TYPE_UNSPECIFIED")
	j := newTestJobClient(t, rs.URL)
	if err := j.UploadStepLog(context.Background(), "s", []byte("a\n"), 1); err != nil {
		t.Fatal(err)
	}
	if p := rs.requests()[1]; p.Header.Get("x-ms-blob-type") != "" {
		t.Errorf("x-ms headers are Azure-only: %v", p.Header)
	}
	if err := j.UploadStepLog(context.Background(), "s", nil, 0); err != nil || len(rs.requests()) != 3 {
		t.Errorf("empty log should upload nothing: %v", err)
	}
}

func TestSplitLog(t *testing.T) {
	long := bytes.Repeat([]byte("y"), 9<<20) // one 9 MiB line
	blocks := splitLog(long)
	if len(blocks) != 3 || len(blocks[0]) != 4<<20 || len(blocks[2]) != 1<<20 {
		t.Errorf("hard split: %d blocks", len(blocks))
	}
	if splitLog(nil) != nil {
		t.Error("empty log has no blocks")
	}
}
