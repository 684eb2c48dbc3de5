// Package workflow reads `.solstice/workflow.kdl`, Solstice's own workflow
// format (the KDL "superset" beside Actions YAML), into a Workflow.
//
// A file holds one workflow node:
//
//	workflow name="CI" {
//	    env RUST_BACKTRACE="1"
//	    job id="illumos-build" runs_on="illumos-latest" timeout="45m" {
//	        setup path=".solstice/setup-illumos.sh"
//	        step name="Build" run="cargo build --workspace"
//	        step name="Test" workdir="crates/core" {
//	            env CARGO_TERM_COLOR="never"
//	        }
//	    }
//	}
//
// The nodes are:
//
//   - workflow: property name (optional); children env and job (at least
//     one job).
//   - job: properties id and runs_on (both required), workdir, timeout;
//     children env, setup and step, in any order. Instead of the runs_on
//     property (or besides it) a child `runs_on "omnios" "freebsd-14"`
//     names several labels: the job runs once per label (an extension). Job ids are unique and,
//     as in GitHub Actions, start with a letter or "_" and continue with
//     letters, digits, "-" or "_".
//   - setup: property path (required). A job's setup scripts run in the
//     order written, before its steps.
//   - step: properties name, run, workdir, timeout. The script is run="..."
//     or the step's single argument (step "make test"), either of which may
//     be a multi-line string; exactly one of the two is required.
//
// Beyond the nodes seen in Solstice's original format, these extensions
// are ours:
//
//   - env: a child of workflow, job or step whose properties are
//     environment variables (env FOO="bar" X="1"). Names are POSIX-portable
//     ([A-Za-z_][A-Za-z0-9_]*). Values are strings; integers and #true or
//     #false are accepted and turned into their text ("1", "true"). Several
//     env nodes merge, a later one overriding an earlier one.
//   - workdir="dir" on job and step: the working directory.
//   - timeout="30m" on job and step: a Go duration string (time.ParseDuration:
//     "90s", "30m", "1h30m"), which must be positive. Plain numbers are
//     rejected rather than guessed to be minutes.
//
// Validation is strict, so a typo fails the run instead of being ignored:
// an unknown node or property, a missing required property, an argument
// where none is expected, a value of the wrong type, an empty string, a
// duplicate job id, a bad duration and a type annotation (none has a
// meaning here) are all errors. Errors are *Error and name the file, line,
// column and the offending name, suggesting the intended one for likely
// typos:
//
//	.solstice/workflow.kdl:4:5: job "x": unknown property "runson" (did you mean "runs_on"?)
package workflow

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/solstice-ci/solstice/guest/kdl"
)

// Workflow is a parsed workflow file.
type Workflow struct {
	Name string
	Env  map[string]string // nil when there is no env node
	Jobs []Job
}

// Job is one job: a VM of the runs_on label running setup scripts, then
// steps.
type Job struct {
	ID     string
	RunsOn []string // one run per label, in the order written
	// RunsOnPos is where each label of RunsOn is written, for messages
	// about a label (solstice validate: no such image).
	RunsOnPos []kdl.Pos
	Env       map[string]string
	Workdir   string
	Timeout   time.Duration // 0 when not set
	Setup     []string      // script paths, in order
	Steps     []Step
}

// Step is one script of a job.
type Step struct {
	Name    string
	Run     string
	Env     map[string]string
	Workdir string
	Timeout time.Duration
}

// Error is a problem in a workflow file, syntax or meaning.
type Error struct {
	File      string
	Line, Col int // 1-based
	Msg       string
	Err       error // the *kdl.Error for a syntax error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Parse reads and validates a workflow file. filename is used in errors.
func Parse(r io.Reader, filename string) (*Workflow, error) {
	doc, err := kdl.Parse(r)
	var kerr *kdl.Error
	switch {
	case errors.As(err, &kerr):
		return nil, &Error{File: filename, Line: kerr.Line, Col: kerr.Column, Msg: kerr.Msg, Err: kerr}
	case err != nil:
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	d := &decoder{file: filename}
	wf := d.document(doc)
	if d.err != nil {
		return nil, d.err
	}
	return wf, nil
}
