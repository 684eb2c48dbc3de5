package contract

import (
	"strings"
	"testing"
	"time"
)

func intp(i int) *int { return &i }

func TestMarshalFormat(t *testing.T) {
	at := time.Date(2026, 1, 2, 14, 4, 5, 120000000, time.UTC)
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"job_started", Event{Seq: 1, Time: at, Type: TypeJobStarted, Job: &Job{ID: "build", Name: "build (amd64)", Workflow: "CI"}, Agent: "v1", Steps: 3},
			`{"seq":1,"time":"2026-01-02T14:04:05.120000000Z","type":"job_started","job":{"id":"build","name":"build (amd64)","workflow":"CI"},"agent":"v1","steps":3}`},
		{"step_started", Event{Seq: 2, Time: at, Type: TypeStepStarted, Step: 0, StepID: "v", Name: "Compute"},
			`{"seq":2,"time":"2026-01-02T14:04:05.120000000Z","type":"step_started","step":0,"id":"v","name":"Compute"}`},
		{"empty log line", Event{Seq: 3, Time: at, Type: TypeLog, Step: -1, Stream: System},
			`{"seq":3,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":-1,"stream":"system","line":""}`},
		{"annotation", Event{Seq: 4, Time: at, Type: TypeLog, Step: 1, Stream: System, Line: "Error: a.go:3: boom", Kind: KindError,
			Annotation: &Annotation{Level: "error", Message: "boom", File: "a.go", Line: 3}},
			`{"seq":4,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":1,"stream":"system","line":"Error: a.go:3: boom","kind":"error","annotation":{"level":"error","message":"boom","file":"a.go","line":3}}`},
		{"step_finished", Event{Seq: 5, Time: at, Type: TypeStepFinished, Step: 1, Outcome: Failure, Conclusion: Success, ExitCode: intp(2), DurationMS: 0},
			`{"seq":5,"time":"2026-01-02T14:04:05.120000000Z","type":"step_finished","step":1,"outcome":"failure","conclusion":"success","exit_code":2,"duration_ms":0}`},
		{"skipped", Event{Seq: 6, Time: at, Type: TypeStepFinished, Step: 2, Outcome: Skipped, Conclusion: Skipped, DurationMS: 0, Reason: "no"},
			`{"seq":6,"time":"2026-01-02T14:04:05.120000000Z","type":"step_finished","step":2,"outcome":"skipped","conclusion":"skipped","duration_ms":0,"reason":"no"}`},
		{"outputs empty", Event{Seq: 7, Time: at, Type: TypeOutputs},
			`{"seq":7,"time":"2026-01-02T14:04:05.120000000Z","type":"outputs","outputs":{}}`},
		{"outputs sorted", Event{Seq: 8, Time: at, Type: TypeOutputs, Outputs: map[string]string{"b": "2", "a": "1"}},
			`{"seq":8,"time":"2026-01-02T14:04:05.120000000Z","type":"outputs","outputs":{"a":"1","b":"2"}}`},
		{"job_finished", Event{Seq: 9, Time: at, Type: TypeJobFinished, Conclusion: Cancelled, DurationMS: 1500},
			`{"seq":9,"time":"2026-01-02T14:04:05.120000000Z","type":"job_finished","conclusion":"cancelled","duration_ms":1500}`},
		{"infra_error", Event{Seq: 10, Time: at, Type: TypeInfraError, Message: "no disk"},
			`{"seq":10,"time":"2026-01-02T14:04:05.120000000Z","type":"infra_error","message":"no disk"}`},
		{"escapes and invalid utf-8", Event{Seq: 11, Time: at, Type: TypeLog, Stream: Stdout, Line: "q\"b\\\t\x01é\xff\xfe\u2028"},
			`{"seq":11,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":0,"stream":"stdout","line":"q\"b\\\t\u0001é\ufffd\ufffd\u2028"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MarshalEvent(&tt.ev)
			if string(got) != tt.want+"\n" {
				t.Fatalf("Marshal =\n%s\nwant\n%s", got, tt.want)
			}
			back, err := DecodeEvent(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Seq != tt.ev.Seq || back.Type != tt.ev.Type || back.Line != strings.ToValidUTF8(tt.ev.Line, "\ufffd\ufffd") {
				t.Errorf("round trip changed the event: %+v", back)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `{"type":"log"}`, `{"seq":1}`, `[1]`} {
		if _, err := DecodeEvent([]byte(in)); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
}
