// Package events is the event stream of a Solstice job: what the guest
// agent (solstice-guest) reports while it runs a plan, and what the
// solstice-vm driver and the runner shims read back. It defines the event
// format, a Writer that the agent uses, a Splitter that turns process
// output into log lines, and Follow, which tails an events file.
//
// # Format
//
// The stream is a file of JSON lines (events.jsonl), one event per line,
// each ending in "\n". The byte offset just after a line is the resume
// token of every reader: following again from that offset yields exactly
// the events after it, no gaps and no duplicates. Every event has
//
//	"seq"  1, 2, 3, … strictly increasing, no gaps, within one file
//	"time" RFC 3339, UTC, always nine fractional digits
//	       ("2026-01-02T15:04:05.123456789Z")
//	"type" one of the types below
//
// and, by type (fields not listed are absent; consumers must ignore
// unknown fields and unknown types):
//
//	job_started   "job":{"id","name","workflow"}, "agent" (agent version),
//	              "steps" (number of plan steps)
//	step_started  "step" (plan step index, from 0), "id" (step id, if any),
//	              "name" (display name, expressions expanded)
//	log           "step" (index, or -1 for job-level lines), "stream"
//	              ("stdout", "stderr" or "system"), "line" (the text, no
//	              newline), optionally "kind" and "annotation" (below)
//	step_finished "step", "outcome" and "conclusion" (success, failure,
//	              cancelled, skipped; they differ only under
//	              continue-on-error), "exit_code" (only when a process
//	              ran and exited), "duration_ms", "reason" (why a step was
//	              skipped, cancelled or failed without a process)
//	step_summary  "step", "markdown": the step's GITHUB_STEP_SUMMARY
//	              (masked; at most 1 MiB, as on GitHub)
//	outputs       "outputs": {name: value} job outputs, once, after the last
//	              step (possibly {})
//	job_finished  "conclusion" (success, failure, cancelled),
//	              "duration_ms"; always the last event of a job that ran
//	infra_error   "message": the agent could not run the job (bad plan,
//	              cannot create its directories, …); the last event
//
// Every plan step gets exactly one step_started and one step_finished, in
// index order, skipped steps included (their step_finished follows at
// once). A stream ends with job_finished or infra_error and nothing after.
//
// Log kinds: "group" / "endgroup" (line "##[group]title" / "##[endgroup]",
// the markers GitHub and Gitea render as collapsible sections), "command"
// (an echoed workflow command), "debug" (line "Debug: …"), and "error",
// "warning", "notice" (line "Error: …", "Warning: …", "Notice: …", with
// file:line:col and title in front of the message when given, and an
// "annotation" object {"level","message","file","line","col","end_line",
// "end_column","title"} so a shim can create a forge annotation).
//
// # Log lines
//
// Output of any size or encoding becomes log events without breaking the
// stream and with bounded memory (see Splitter): it is split at "\n"; a
// "\r\n" ends a line too; a lone "\r" (a progress bar redrawing itself)
// discards what came before it on that line, keeping what a terminal
// would finally show (GitHub's runner would instead start a new line
// at each "\r"); a line longer than 64 KiB is cut into pieces of at most
// 64 KiB (never inside a UTF-8 sequence or a masked secret); invalid UTF-8
// becomes U+FFFD, one per invalid byte.
//
// # Masking
//
// The Writer passes every free-text field (names, lines, reasons,
// messages, summaries, annotation texts, output values) through the job's
// mask.Masker before the event is written, so no event carries a secret.
package events

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
}

// Job identifies the job in job_started.
type Job struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Workflow string `json:"workflow,omitempty"`
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

// Decode parses one line of the stream (with or without its newline).
func Decode(line []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return Event{}, fmt.Errorf("events: decode: %w", err)
	}
	if ev.Seq <= 0 || ev.Type == "" {
		return Event{}, errors.New("events: decode: missing seq or type")
	}
	return ev, nil
}

// Marshal renders ev as one line of the stream, newline included. Only
// the fields of its type are written (the log line even when empty), in a
// fixed order, so the same event always has the same bytes.
func Marshal(ev *Event) []byte { return appendEvent(nil, ev) }
