package events

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/guest/mask"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Writer appends events to the events file and copies each line to an
// echo writer (the agent's stdout, which the driver reads when it runs the
// agent in the foreground). It assigns seq and time, masks secrets, and
// fsyncs the file at step and job boundaries, so that a reader that resumes
// after a crash of the VM's host finds whole steps. It is safe for
// concurrent use: stdout and stderr of a step are read concurrently.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	echo   io.Writer // nil once it failed: a vanished SSH session must not stop the job
	masker *mask.Masker
	seq    int64
	buf    []byte
	offset int64
	err    error // sticky: the first failure to write the file
}

// syncTypes are the boundaries after which the file is fsynced.
var syncTypes = map[string]bool{
	contract.TypeJobStarted: true, contract.TypeStepStarted: true, contract.TypeStepFinished: true,
	contract.TypeOutputs: true, contract.TypeJobFinished: true, contract.TypeInfraError: true,
}

// Create makes a new events file at path; it refuses an existing one,
// because readers hold byte offsets into it. echo and masker may be nil.
func Create(path string, echo io.Writer, masker *mask.Masker) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("events: create %s: %w", path, err)
	}
	if masker == nil {
		masker = mask.New()
	}
	return &Writer{f: f, echo: echo, masker: masker}, nil
}

// Emit writes ev with the next seq and the current time and returns it as
// written (masked). An error means the events file can no longer be
// written; the job cannot report anything after that.
func (w *Writer) Emit(ev contract.Event) (contract.Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return ev, w.err
	}
	w.seq++
	ev.Seq = w.seq
	ev.Time = now().UTC()
	w.maskEvent(&ev)
	w.buf = contract.AppendEvent(w.buf[:0], &ev)
	if _, err := w.f.Write(w.buf); err != nil {
		w.err = fmt.Errorf("events: write: %w", err)
		return ev, w.err
	}
	w.offset += int64(len(w.buf))
	if syncTypes[ev.Type] {
		if err := w.f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
			w.err = fmt.Errorf("events: sync: %w", err)
			return ev, w.err
		}
	}
	if w.echo != nil {
		if _, err := w.echo.Write(w.buf); err != nil {
			w.echo = nil
		}
	}
	return ev, nil
}

// Offset is the size of the stream written so far: the resume token after
// the last event.
func (w *Writer) Offset() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.offset
}

// Close syncs and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	serr := w.f.Sync()
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("events: close: %w", err)
	}
	if serr != nil && !errors.Is(serr, os.ErrInvalid) {
		return fmt.Errorf("events: sync: %w", serr)
	}
	return nil
}

// maskEvent masks the free-text fields. Structural fields (type, stream,
// kind, conclusions, ids) are left alone: masking a secret that happens to
// read "success" must not break the protocol.
func (w *Writer) maskEvent(ev *contract.Event) {
	m := w.masker.Mask
	if ev.Job != nil {
		j := *ev.Job
		j.Name, j.Workflow = m(j.Name), m(j.Workflow)
		ev.Job = &j
	}
	ev.Name, ev.Line, ev.Reason = m(ev.Name), m(ev.Line), m(ev.Reason)
	ev.Markdown, ev.Message = m(ev.Markdown), m(ev.Message)
	if ev.Annotation != nil {
		a := *ev.Annotation
		a.Message, a.Title, a.File = m(a.Message), m(a.Title), m(a.File)
		ev.Annotation = &a
	}
	if ev.Outputs != nil {
		outs := maps.Clone(ev.Outputs)
		for k, v := range outs {
			outs[k] = m(v)
		}
		ev.Outputs = outs
	}
}

// now is the clock; tests replace it.
var now = time.Now
