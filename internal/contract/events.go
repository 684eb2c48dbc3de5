package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event types.
const (
	TypeJobStarted   = "job_started"
	TypeStepStarted  = "step_started"
	TypeLog          = "log"
	TypeStepFinished = "step_finished"
	TypeStepSummary  = "step_summary"
	TypeOutputs      = "outputs"
	TypeJobFinished  = "job_finished"
	TypeInfraError   = "infra_error"
)

// Log streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
	System = "system"
)

// Log kinds.
const (
	KindGroup    = "group"
	KindEndGroup = "endgroup"
	KindCommand  = "command"
	KindDebug    = "debug"
	KindError    = "error"
	KindWarning  = "warning"
	KindNotice   = "notice"
)

// Step outcomes and conclusions, and job conclusions.
const (
	Success   = "success"
	Failure   = "failure"
	Cancelled = "cancelled"
	Skipped   = "skipped"
)

// JobLevel is the step index of log lines that belong to no step.
const JobLevel = -1

// Event is one line of the stream. Which fields are set depends on Type
// (see the package documentation).
type Event struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`

	Job   *Job   `json:"job,omitempty"`
	Agent string `json:"agent,omitempty"`
	Steps int    `json:"steps,omitempty"`

	Step   int    `json:"step"`
	StepID string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`

	Stream     string      `json:"stream,omitempty"`
	Line       string      `json:"line,omitempty"`
	Kind       string      `json:"kind,omitempty"`
	Annotation *Annotation `json:"annotation,omitempty"`

	Outcome    string `json:"outcome,omitempty"`
	Conclusion string `json:"conclusion,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	Reason     string `json:"reason,omitempty"`

	Markdown string            `json:"markdown,omitempty"`
	Outputs  map[string]string `json:"outputs,omitempty"`
	Message  string            `json:"message,omitempty"`

	Debug *DebugSession `json:"debug,omitempty"`
}

// Annotation is an error, warning or notice a step reported with a
// workflow command (or the agent reported about a step). Zero numbers are
// absent.
type Annotation struct {
	Level     string `json:"level"` // error, warning, notice
	Message   string `json:"message"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Col       int    `json:"col,omitempty"`
	EndLine   int    `json:"end_line,omitempty"`
	EndColumn int    `json:"end_column,omitempty"`
	Title     string `json:"title,omitempty"`
}

// Terminal reports whether ev ends a stream.
func (ev *Event) Terminal() bool {
	return ev.Type == TypeJobFinished || ev.Type == TypeInfraError
}

// DecodeEvent parses one line of the stream (with or without its newline).
func DecodeEvent(line []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fmt.Errorf("events: decode: %w", err)
	}
	if ev.Seq <= 0 || ev.Type == "" {
		return Event{}, errors.New("events: decode: missing seq or type")
	}
	// RFC 3339 allows an offset that moves a time in year 0 or 9999 out
	// of the four-digit years AppendEvent writes in UTC; such a line could
	// not be written back as one that decodes.
	if y := ev.Time.UTC().Year(); y < 0 || y > 9999 {
		return Event{}, fmt.Errorf("events: decode: time %s is out of range", ev.Time.Format(time.RFC3339))
	}
	return ev, nil
}

// MarshalEvent renders ev as one line of the stream, newline included. Only
// the fields of its type are written (the log line even when empty), in a
// fixed order, so the same event always has the same bytes.
func MarshalEvent(ev *Event) []byte { return AppendEvent(nil, ev) }
