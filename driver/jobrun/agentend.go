package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// maxAgentEnds is how many times in a row the agent's follow may end
// without a new event before the job is failed. The real follow ends only
// after the job's last event, or when the agent is gone; a job that killed
// the agent, or replaced its binary, makes every new follow end at once,
// and resuming it would loop until the deadline, hours away.
const maxAgentEnds = 3

// errAgentEnded is the agent's follow command ending on its own: it
// exited (with status) rather than the connection breaking.
type errAgentEnded struct {
	status int
	stderr string
}

func (e errAgentEnded) Error() string {
	s := fmt.Sprintf("solstice-guest follow exited with status %d", e.status)
	if e.stderr != "" {
		s += fmt.Sprintf(" saying %q", e.stderr)
	}
	return s
}

// exitReader is a follow session's stdout that, at its end, waits for the
// command's exit status and reports it as an errAgentEnded.
type exitReader struct {
	io.Reader
	wait   func() error
	stderr func() string // what the command said on stderr, once it ended
}

func (r exitReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	werr := r.wait()
	var exit exitStatus
	switch {
	case werr == nil:
		return n, errAgentEnded{status: 0, stderr: r.stderr()}
	case errors.As(werr, &exit):
		return n, errAgentEnded{status: exit.ExitStatus(), stderr: r.stderr()}
	}
	return n, err // the connection broke: no word from the agent
}

// exitStatus is a command's exit: an SSH session's (*ssh.ExitError) or
// the agent port's (*agentport.ExitError).
type exitStatus interface{ ExitStatus() int }

// agentEnds counts the agent's follow ending without a new event in
// between; a stream that moved on, or a broken connection, resets it.
type agentEnds struct {
	n      int
	offset int64
}

// check returns the bound the job broke when the agent's follow has ended
// maxAgentEnds times in a row at the same offset.
func (a *agentEnds) check(offset int64, err error) error {
	var ended errAgentEnded
	if !errors.As(err, &ended) {
		a.n = 0
		return nil
	}
	if offset != a.offset {
		a.n = 0
	}
	a.n, a.offset = a.n+1, offset
	if a.n < maxAgentEnds {
		return nil
	}
	return errBound{fmt.Sprintf("the guest agent stopped sending the job's events: its follow ended %d times in a row without the job's end (last: %v); the job may have killed or replaced the agent",
		a.n, ended)}
}

// resumeChecked is a resume policy that first asks ends whether the job
// broke the bound, then leaves the rest to next.
func resumeChecked(ends *agentEnds, next func(context.Context, int64, error) error) func(context.Context, int64, error) error {
	return func(ctx context.Context, offset int64, err error) error {
		if b := ends.check(offset, err); b != nil {
			return b
		}
		return next(ctx, offset, err)
	}
}
