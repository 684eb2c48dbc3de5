package jobrun

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestOpenEventsDropsHalfWrittenLine(t *testing.T) {
	tests := []struct {
		name, content string
		want          int64
	}{
		{"empty", "", 0},
		{"whole lines", "{\"seq\":1}\n{\"seq\":2}\n", 20},
		{"torn last line", "{\"seq\":1}\n{\"se", 10},
		{"only a torn line", "{\"se", 0},
		{"long file", strings.Repeat("x", 9000) + "\n" + strings.Repeat("y", 5000), 9001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sub", "events.jsonl")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(tt.content), 0o644)
			f, off, err := openEvents(p)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("next\n"))
			f.Close()
			data, _ := os.ReadFile(p)
			if off != tt.want || string(data) != tt.content[:tt.want]+"next\n" {
				t.Fatalf("offset %d, file %q", off, data)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		line  string
		code  int
		final bool
	}{
		{`{"seq":9,"type":"job_finished","conclusion":"success"}`, contract.ExitSuccess, true},
		{`{"seq":9,"type":"job_finished","conclusion":"failure"}`, contract.ExitJobFailed, true},
		{`{"seq":9,"type":"job_finished","conclusion":"cancelled"}`, contract.ExitCancelled, true},
		{`{"seq":1,"type":"infra_error","message":"no git"}`, contract.ExitInfrastructure, true},
		{`{"seq":2,"type":"log","step":0,"stream":"stdout","line":"hi"}`, 0, false},
	}
	for _, tt := range tests {
		ev, err := decode([]byte(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		if code, final := exitCode(ev); code != tt.code || final != tt.final {
			t.Errorf("%s: exitCode = %d, %v", tt.line, code, final)
		}
	}
	if _, err := decode([]byte("not json")); err == nil {
		t.Error("decode accepted garbage")
	}
}

func TestRender(t *testing.T) {
	var out bytes.Buffer
	r := renderer{out: &out}
	for _, l := range []string{
		`{"seq":1,"type":"step_started","step":0,"name":"Build"}`,
		`{"seq":2,"type":"log","step":0,"line":"compiling"}`,
		`{"seq":3,"type":"step_finished","step":0,"conclusion":"failure","exit_code":2,"duration_ms":1500}`,
		`{"seq":4,"type":"step_finished","step":1,"conclusion":"skipped"}`,
		`{"seq":5,"type":"job_finished","conclusion":"failure","duration_ms":2000}`,
	} {
		ev, _ := decode([]byte(l))
		r.event(ev)
	}
	want := "==> Build\ncompiling\n<== Build: failure (exit code 2) in 1.5s\n<== step 2: skipped in 0s\n==> job failure in 2s\n"
	if out.String() != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestWriteInfraError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "events.jsonl")
	if err := WriteInfraError(p, "boot timeout"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	ev, err := decode(data)
	if err != nil || ev.Seq != 1 || ev.Type != "infra_error" || ev.Message != "boot timeout" || !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("events file %q", data)
	}
}

func TestRecordNumbersAfterTheJob(t *testing.T) {
	p := filepath.Join(t.TempDir(), "events.jsonl")
	first := contract.Event{Seq: 7, Time: time.Now().UTC(), Type: contract.TypeJobFinished, Conclusion: contract.Failure}
	if err := os.WriteFile(p, contract.MarshalEvent(&first), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Record(p, &out, contract.Event{Type: contract.TypeDebugEnded, Message: "No debug session: no keys."}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	ev, err := contract.DecodeEvent(lines[len(lines)-1])
	if err != nil || ev.Seq != 8 || ev.Type != contract.TypeDebugEnded {
		t.Fatalf("recorded %+v (%v), want debug_ended with seq 8", ev, err)
	}
	if got := out.String(); got != "==> No debug session: no keys.\n" {
		t.Fatalf("rendered %q", got)
	}
}
