package contract

import (
	"errors"
	"fmt"
	"slices"
)

// Bounds on what a guest may say in one event. A line is at most MaxLine
// bytes already; these keep the parts a forge renders as one unit (a step
// name, a reason, a summary) to sizes a forge accepts.
const (
	// MaxSteps bounds job_started's step count: a shim allocates per step.
	MaxSteps = 1000
	// MaxField bounds names, ids, reasons, messages and annotation texts.
	MaxField = 64 << 10
	// MaxMarkdown bounds a step summary, as GitHub's 1 MiB per step.
	MaxMarkdown = 1 << 20
)

// Checker validates a guest's events in the order they come, against the
// job's plan. The guest is hostile: an event a renderer could not take
// (a step index outside the plan, a step finished that never started) is
// an error, and its job fails. Events at or below the last sequence
// number seen are repeats (a resumed stream) and skipped, as are events
// of types this version does not know.
type Checker struct {
	// Steps is the plan's step count; zero takes job_started's.
	Steps int

	seq     int64
	started bool
	steps   int
	running int    // the open step, or JobLevel
	begun   []bool // which steps have started
	failed  bool   // job_finished said failure: debug events may follow
	session bool   // a debug_session was accepted
}

// Seq is the sequence number of the last event accepted.
func (c *Checker) Seq() int64 { return c.seq }

// Check reports whether ev is to be rendered (false for a repeat or an
// unknown type) or why it is invalid.
func (c *Checker) Check(ev *Event) (bool, error) {
	if ev.Seq <= c.seq {
		return false, nil
	}
	if err := checkSizes(ev); err != nil {
		return false, err
	}
	var err error
	switch ev.Type {
	case TypeJobStarted:
		err = c.jobStarted(ev)
	case TypeStepStarted:
		err = c.stepStarted(ev)
	case TypeStepFinished:
		err = c.stepFinished(ev)
	case TypeLog:
		if ev.Step != JobLevel {
			err = c.inPlan(ev)
		}
	case TypeStepSummary:
		err = c.inPlan(ev)
	case TypeJobFinished:
		err = checkConclusion(ev.Conclusion)
		c.failed = ev.Conclusion == Failure
	case TypeOutputs, TypeInfraError:
	case TypeDebugSession, TypeDebugEnded:
		err = c.debug(ev)
	default:
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", ev.Type, err)
	}
	c.seq = ev.Seq
	return true, nil
}

func (c *Checker) jobStarted(ev *Event) error {
	switch {
	case c.started:
		return fmt.Errorf("the job had already started")
	case ev.Steps < 0 || ev.Steps > MaxSteps:
		return fmt.Errorf("%d steps, outside [0, %d]", ev.Steps, MaxSteps)
	case c.Steps > 0 && ev.Steps != c.Steps:
		return fmt.Errorf("%d steps, but the plan has %d", ev.Steps, c.Steps)
	}
	c.started, c.steps, c.running = true, ev.Steps, JobLevel
	c.begun = make([]bool, ev.Steps)
	return nil
}

func (c *Checker) stepStarted(ev *Event) error {
	if err := c.inPlan(ev); err != nil {
		return err
	}
	switch {
	case c.running != JobLevel:
		return fmt.Errorf("step %d started while step %d runs", ev.Step+1, c.running+1)
	case c.begun[ev.Step]:
		return fmt.Errorf("step %d started twice", ev.Step+1)
	}
	c.begun[ev.Step], c.running = true, ev.Step
	return nil
}

func (c *Checker) stepFinished(ev *Event) error {
	if err := c.inPlan(ev); err != nil {
		return err
	}
	if c.running != ev.Step {
		return fmt.Errorf("step %d finished but did not run", ev.Step+1)
	}
	c.running = JobLevel
	return checkConclusion(ev.Conclusion)
}

// inPlan checks ev's step index against the plan. Other messages count
// steps from 1, as a forge shows them.
func (c *Checker) inPlan(ev *Event) error {
	if !c.started {
		return fmt.Errorf("step %d before the job started", ev.Step+1)
	}
	if ev.Step < 0 || ev.Step >= c.steps {
		return fmt.Errorf("step index %d, outside the plan's %d steps", ev.Step, c.steps)
	}
	return nil
}

// debug accepts a debug session's events only after a failed job's
// job_finished (the driver writes them there; a guest that sends one
// earlier is forging it), a session before its end, and a session's
// address only when it is complete.
func (c *Checker) debug(ev *Event) error {
	if !c.failed {
		return errors.New("not after a failed job")
	}
	if ev.Type == TypeDebugEnded {
		return nil
	}
	d := ev.Debug
	switch {
	case c.session:
		return errors.New("a second session")
	case d == nil || d.Host == "" || d.User == "" || d.Port <= 0 || d.Port > 65535:
		return errors.New("incomplete address")
	case len(d.Host) > 255 || len(d.User) > 255:
		return errors.New("address too long")
	}
	c.session = true
	return nil
}

func checkConclusion(s string) error {
	if !slices.Contains([]string{Success, Failure, Cancelled, Skipped}, s) {
		return fmt.Errorf("unknown conclusion %.40q", s)
	}
	return nil
}

func checkSizes(ev *Event) error {
	fields := []struct {
		name string
		v    string
	}{{"id", ev.StepID}, {"name", ev.Name}, {"reason", ev.Reason}, {"message", ev.Message}, {"agent", ev.Agent}}
	if a := ev.Annotation; a != nil {
		fields = append(fields, struct{ name, v string }{"annotation", a.Message}, struct{ name, v string }{"annotation title", a.Title})
	}
	for _, f := range fields {
		if len(f.v) > MaxField {
			return fmt.Errorf("%s: its %s is %d bytes, over %d", ev.Type, f.name, len(f.v), MaxField)
		}
	}
	if len(ev.Markdown) > MaxMarkdown {
		return fmt.Errorf("%s: its summary is %d bytes, over %d", ev.Type, len(ev.Markdown), MaxMarkdown)
	}
	return nil
}
