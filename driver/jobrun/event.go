package jobrun

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/solstice-ci/solstice/driver/exitcode"
	"github.com/solstice-ci/solstice/guest/events"
)

func decode(line []byte) (events.Event, error) {
	return events.Decode(bytes.TrimSpace(line))
}

// exitCode maps the job's final event to the task exit code.
func exitCode(ev events.Event) (int, bool) {
	switch ev.Type {
	case events.TypeJobFinished:
		switch ev.Conclusion {
		case events.Success:
			return exitcode.Success, true
		case events.Cancelled:
			return exitcode.Cancelled, true
		default:
			return exitcode.JobFailed, true
		}
	case events.TypeInfraError:
		return exitcode.Infrastructure, true
	}
	return 0, false
}

// renderer writes events as the lines people read in `nomad alloc logs`.
type renderer struct {
	out   io.Writer
	names map[int]string
}

func (r *renderer) event(ev events.Event) {
	if r.out == nil {
		return
	}
	if r.names == nil {
		r.names = map[int]string{}
	}
	switch ev.Type {
	case events.TypeStepStarted:
		r.names[ev.Step] = ev.Name
		fmt.Fprintf(r.out, "==> %s\n", ev.Name)
	case events.TypeLog:
		fmt.Fprintln(r.out, ev.Line)
	case events.TypeStepFinished:
		fmt.Fprintf(r.out, "<== %s: %s%s in %s\n", r.stepName(ev), ev.Conclusion, exitSuffix(ev.ExitCode), time.Duration(ev.DurationMS)*time.Millisecond)
	case events.TypeJobFinished:
		fmt.Fprintf(r.out, "==> job %s in %s\n", ev.Conclusion, time.Duration(ev.DurationMS)*time.Millisecond)
	case events.TypeInfraError:
		fmt.Fprintf(r.out, "==> infrastructure error: %s\n", ev.Message)
	}
}

// stepName remembers names from step_started; after a plugin restart the
// stream resumes mid-step and the number has to do.
func (r *renderer) stepName(ev events.Event) string {
	if n := r.names[ev.Step]; n != "" {
		return n
	}
	return fmt.Sprintf("step %d", ev.Step+1)
}

func exitSuffix(code *int) string {
	if code == nil {
		return ""
	}
	return fmt.Sprintf(" (exit code %d)", *code)
}

// WriteInfraError writes a one-event stream saying the job could not run.
func WriteInfraError(path, message string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	ev := events.Event{Seq: 1, Time: time.Now().UTC(), Type: events.TypeInfraError, Message: message}
	return os.WriteFile(path, events.Marshal(&ev), 0o644)
}
