package jobrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/driver/exitcode"
)

// event is the part of the guest agent's event contract the driver reads.
type event struct {
	Seq        int64  `json:"seq"`
	Type       string `json:"type"`
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Step       int    `json:"step"`
	Stream     string `json:"stream"`
	Line       string `json:"line"`
	Conclusion string `json:"conclusion"`
	ExitCode   *int   `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Message    string `json:"message"`
}

func decode(line []byte) (event, error) {
	var ev event
	if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil {
		return ev, fmt.Errorf("decode event %q: %w", truncate(string(line), 120), err)
	}
	return ev, nil
}

// exitCode maps the job's final event to the task exit code.
func (ev event) exitCode() (int, bool) {
	switch ev.Type {
	case "job_finished":
		switch ev.Conclusion {
		case "success":
			return exitcode.Success, true
		case "cancelled":
			return exitcode.Cancelled, true
		default:
			return exitcode.JobFailed, true
		}
	case "infra_error":
		return exitcode.Infrastructure, true
	}
	return 0, false
}

// renderer writes events as the lines people read in `nomad alloc logs`.
type renderer struct {
	out   io.Writer
	names map[int]string
}

func (r *renderer) event(ev event) {
	if r.out == nil {
		return
	}
	if r.names == nil {
		r.names = map[int]string{}
	}
	switch ev.Type {
	case "step_started":
		r.names[ev.Index] = ev.Name
		fmt.Fprintf(r.out, "==> %s\n", ev.Name)
	case "log":
		fmt.Fprintln(r.out, ev.Line)
	case "step_finished":
		name := r.names[ev.Index]
		if name == "" {
			name = ev.Name
		}
		fmt.Fprintf(r.out, "<== %s: %s%s in %s\n", name, ev.Conclusion, exitSuffix(ev.ExitCode), time.Duration(ev.DurationMS)*time.Millisecond)
	case "job_finished":
		fmt.Fprintf(r.out, "==> job %s\n", ev.Conclusion)
	case "infra_error":
		fmt.Fprintf(r.out, "==> infrastructure error: %s\n", ev.Message)
	}
}

func exitSuffix(code *int) string {
	if code == nil {
		return ""
	}
	return fmt.Sprintf(" (exit code %d)", *code)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
func bytesReader(b []byte) io.Reader   { return bytes.NewReader(b) }

// WriteInfraError writes a one-event stream saying the job could not run.
func WriteInfraError(path, message string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	line, err := json.Marshal(map[string]any{
		"seq": 1, "time": time.Now().UTC().Format(time.RFC3339Nano), "type": "infra_error", "message": message,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(line, '\n'), 0o644)
}
