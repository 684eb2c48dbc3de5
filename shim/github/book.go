package github

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// lineTime is how the runner stamps every log line: UTC with seven
// fractional digits.
const lineTime = "2006-01-02T15:04:05.0000000Z"

// step is one step as GitHub shows it.
type step struct {
	id         string // external_id
	number     int
	name       string
	status     protocol.StepStatus
	conclusion protocol.Conclusion
	started    *time.Time
	completed  *time.Time
	lines      []string // stamped log lines
	fed        int      // lines sent to the live feed
	budget     *budget  // the job's log bytes; nil for no bound
}

// maxJobLog bounds the log lines a job's steps hold in memory, which is
// the whole log until the job ends: a guest may write without end.
const maxJobLog = 64 << 20

// budget is what is left of a job's maxJobLog, shared by its steps.
type budget struct {
	left      int
	truncated bool
}

// take reports whether n more bytes fit, and whether this is the first
// time they did not (the step then says so, once).
func (b *budget) take(n int) (fits, first bool) {
	if b == nil {
		return true, false
	}
	if n <= b.left {
		b.left -= n
		return true, false
	}
	first, b.truncated = !b.truncated, true
	return false, first
}

func (s *step) start(t time.Time) {
	if s.status == protocol.StatusPending {
		s.status, s.started = protocol.StatusInProgress, &t
	}
}

func (s *step) finish(t time.Time, c protocol.Conclusion) {
	if s.status == protocol.StatusCompleted {
		return
	}
	if s.started == nil {
		s.started = &t
	}
	s.status, s.conclusion, s.completed = protocol.StatusCompleted, c, &t
}

func (s *step) line(t time.Time, text string) { s.lineWithin(s.budget, t, text) }

// lineWithin writes text's lines as far as b allows.
func (s *step) lineWithin(b *budget, t time.Time, text string) {
	for _, l := range strings.Split(text, "\n") {
		l = t.UTC().Format(lineTime) + " " + l
		fits, first := b.take(len(l))
		if first {
			l = t.UTC().Format(lineTime) + " " + truncatedLine
		}
		if fits || first {
			s.lines = append(s.lines, l)
		}
	}
}

// truncatedLine replaces what is over maxJobLog.
var truncatedLine = fmt.Sprintf("##[warning]Output truncated by the runner: the job's log is over %d MiB; later lines are dropped.", maxJobLog>>20)

func (s *step) log() []byte {
	if len(s.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(s.lines, "\n") + "\n")
}

// book holds the job's steps: "Set up job", the job's own steps, then
// "Complete job", numbered from 1 as the runner numbers them. The two
// steps the runner invents get ids derived from the job's id, so a
// restarted shim reports them under the same ids.
type book struct {
	steps  []*step
	dirty  bool // the steps changed since the last update sent
	budget *budget
}

func newBook(jobID string, msgSteps []protocol.Step) *book {
	b := &book{dirty: true, budget: &budget{left: maxJobLog}}
	b.add(inventedID(jobID, "set-up-job"), "Set up job")
	for _, s := range msgSteps {
		b.add(s.ID, stepTitle(s))
	}
	b.add(inventedID(jobID, "complete-job"), "Complete job")
	// The closing lines (the verdict) are few and always shown.
	b.complete().budget = nil
	return b
}

func inventedID(jobID, what string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("solstice:"+jobID+":"+what)).String()
}

func (b *book) add(id, name string) {
	b.steps = append(b.steps, &step{id: id, number: len(b.steps) + 1, name: name, status: protocol.StatusPending, budget: b.budget})
}

func (b *book) setup() *step    { return b.steps[0] }
func (b *book) complete() *step { return b.steps[len(b.steps)-1] }

// stepsStarted reports whether one of the job's own steps has started.
func (b *book) stepsStarted() bool {
	for _, s := range b.steps[1 : len(b.steps)-1] {
		if s.status != protocol.StatusPending {
			return true
		}
	}
	return false
}

// jobStep is the plan's step i, or nil for an index the job lacks.
func (b *book) jobStep(i int) *step {
	if i < 0 || i+1 >= len(b.steps)-1 {
		return nil
	}
	return b.steps[i+1]
}

// closeOpen ends every job step still open: running ones with c, ones
// that never started as skipped.
func (b *book) closeOpen(t time.Time, c protocol.Conclusion) {
	for _, s := range b.steps[1 : len(b.steps)-1] {
		switch s.status {
		case protocol.StatusInProgress:
			s.finish(t, c)
		case protocol.StatusPending:
			s.finish(t, protocol.ConclusionSkipped)
		}
	}
	b.dirty = true
}

func (b *book) updates() []protocol.StepUpdate {
	out := make([]protocol.StepUpdate, 0, len(b.steps))
	for _, s := range b.steps {
		out = append(out, protocol.StepUpdate{
			ExternalID: s.id, Number: s.number, Name: s.name, Status: s.status,
			StartedAt: s.started, CompletedAt: s.completed, Conclusion: s.conclusion,
		})
	}
	return out
}

func (b *book) results() []protocol.StepResult {
	out := make([]protocol.StepResult, 0, len(b.steps))
	for _, s := range b.steps {
		out = append(out, protocol.StepResult{
			ExternalID: s.id, Number: s.number, Name: s.name, Status: s.status,
			Conclusion: s.conclusion, StartedAt: s.started, CompletedAt: s.completed,
		})
	}
	return out
}

// jobLog is every step's log in order, as the job log GitHub offers for
// download.
func (b *book) jobLog() ([]byte, int64) {
	var sb strings.Builder
	var n int64
	for _, s := range b.steps {
		for _, l := range s.lines {
			sb.WriteString(l)
			sb.WriteByte('\n')
			n++
		}
	}
	return []byte(sb.String()), n
}

func (b *book) String() string {
	var parts []string
	for _, s := range b.steps {
		parts = append(parts, fmt.Sprintf("%d %s %d/%d", s.number, s.name, s.status, s.conclusion))
	}
	return strings.Join(parts, "; ")
}
