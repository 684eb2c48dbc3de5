package jobrun

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// The guest is hostile, and the driver serves every VM of its node: what
// it holds for one job's event must not grow with what the guest sends.
// Tail holds a line up to contract.MaxLine; nothing else here copies one
// that long.
const (
	// maxDecoded is the longest line the driver decodes and renders. The
	// events it acts on or shows are shorter: a log line is cut at 64 KiB
	// by the agent, names and messages are at most contract.MaxField, and
	// JSON escaping grows text at most six-fold. Longer lines (a step
	// summary, outputs, or a forgery) go to the events file only.
	maxDecoded = 512 << 10
	// maxCopied is the longest line appended with its newline in one
	// write, through a buffer that lives as long as the job's follow.
	maxCopied = 64 << 10
)

// lineWriter appends lines to the events file.
type lineWriter struct {
	f   *os.File
	buf []byte
}

// write appends line and its newline: in one write when it is short (a
// crash leaves no torn line but the last, which openEvents drops), else
// the line and then the newline, which leaves the same, without a copy.
func (w *lineWriter) write(line []byte) error {
	if len(line) < maxCopied {
		w.buf = append(append(w.buf[:0], line...), '\n')
		_, err := w.f.Write(w.buf)
		return err
	}
	if _, err := w.f.Write(line); err != nil {
		return err
	}
	_, err := w.f.Write([]byte{'\n'})
	return err
}

func decode(line []byte) (contract.Event, error) {
	return contract.DecodeEvent(bytes.TrimSpace(line))
}

// exitCode maps the job's final event to the task exit code.
func exitCode(ev contract.Event) (int, bool) {
	switch ev.Type {
	case contract.TypeJobFinished:
		return contract.ExitFor(ev.Conclusion), true
	case contract.TypeInfraError:
		return contract.ExitInfrastructure, true
	}
	return 0, false
}

// renderer writes events as the lines people read in `nomad alloc logs`.
type renderer struct {
	out   io.Writer
	names map[int]string
	// host is set for events the driver writes itself: only those may
	// show a debug session (a guest could forge a connection line).
	host bool
}

func (r *renderer) event(ev contract.Event) {
	if r.out == nil {
		return
	}
	if r.names == nil {
		r.names = map[int]string{}
	}
	switch ev.Type {
	case contract.TypeStepStarted:
		r.names[ev.Step] = ev.Name
		fmt.Fprintf(r.out, "==> %s\n", ev.Name)
	case contract.TypeLog:
		fmt.Fprintln(r.out, ev.Line)
	case contract.TypeStepFinished:
		fmt.Fprintf(r.out, "<== %s: %s%s in %s\n", r.stepName(ev), ev.Conclusion, exitSuffix(ev.ExitCode), time.Duration(ev.DurationMS)*time.Millisecond)
	case contract.TypeJobFinished:
		fmt.Fprintf(r.out, "==> job %s in %s\n", ev.Conclusion, time.Duration(ev.DurationMS)*time.Millisecond)
	case contract.TypeInfraError:
		fmt.Fprintf(r.out, "==> infrastructure error: %s\n", ev.Message)
	case contract.TypeDebugSession, contract.TypeDebugEnded:
		if !r.host {
			return
		}
		fmt.Fprintf(r.out, "==> %s\n", ev.Message)
	}
}

// stepName remembers names from step_started; after a plugin restart the
// stream resumes mid-step and the number has to do.
func (r *renderer) stepName(ev contract.Event) string {
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
	ev := contract.Event{Seq: 1, Time: time.Now().UTC(), Type: contract.TypeInfraError, Message: message}
	return os.WriteFile(path, contract.MarshalEvent(&ev), 0o644)
}

// Record appends an event the driver itself writes (a debug session's)
// after the job's own stream has ended, numbered after its last event,
// and renders it on out (the task's stdout; may be nil).
func Record(path string, out io.Writer, ev contract.Event) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the events file's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open events file: %w", err)
	}
	defer f.Close()
	seq, err := lastSeq(f)
	if err != nil {
		return err
	}
	ev.Seq, ev.Time = seq+1, time.Now().UTC()
	if _, err := f.Write(contract.MarshalEvent(&ev)); err != nil {
		return fmt.Errorf("append to events file: %w", err)
	}
	(&renderer{out: out, host: true}).event(ev)
	return f.Sync()
}

// LastEvent is the events file's last event; ok is false when the file
// is missing or its last line does not decode.
func LastEvent(path string) (ev contract.Event, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return contract.Event{}, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return contract.Event{}, false
	}
	start := max(st.Size()-contract.MaxLine-1, 0)
	buf := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return contract.Event{}, false
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	ev, err = contract.DecodeEvent(buf[bytes.LastIndexByte(buf, '\n')+1:])
	return ev, err == nil
}
