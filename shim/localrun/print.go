package localrun

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// printer writes solstice run's progress: one line per job and step with
// status and duration, each line led by the job's name since jobs run side
// by side, then a summary.
type printer struct {
	mu    sync.Mutex
	out   io.Writer
	steps map[string]map[int]string // job → step index → name
}

func newPrinter(out io.Writer) *printer {
	return &printer{out: out, steps: map[string]map[int]string{}}
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "solstice: "+format+"\n", args...)
}

func (p *printer) job(name, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%s │ %s\n", name, fmt.Sprintf(format, args...))
}

func (p *printer) event(job string, ev contract.Event) {
	switch ev.Type {
	case contract.TypeStepStarted:
		p.mu.Lock()
		if p.steps[job] == nil {
			p.steps[job] = map[int]string{}
		}
		p.steps[job][ev.Step] = ev.Name
		p.mu.Unlock()
		p.job(job, "▶ %s", ev.Name)
	case contract.TypeLog:
		p.job(job, "  %s", ev.Line)
	case contract.TypeStepFinished:
		p.mu.Lock()
		name := p.steps[job][ev.Step]
		p.mu.Unlock()
		p.job(job, "%s %s%s%s", mark(ev.Conclusion), name, exitNote(ev), took(ev.DurationMS))
	case contract.TypeInfraError:
		p.job(job, "✗ infrastructure error: %s", ev.Message)
	case contract.TypeDebugSession:
		// The driver's line: the ssh command, the expiry, logging out.
		p.job(job, "%s", ev.Message)
		p.job(job, "Ctrl-C ends the session and the run at once")
	case contract.TypeDebugEnded:
		p.job(job, "%s", ev.Message)
	}
}

func mark(conclusion string) string {
	switch conclusion {
	case contract.Success:
		return "✓"
	case contract.Skipped:
		return "-"
	case contract.Cancelled:
		return "⊘"
	}
	return "✗"
}

func exitNote(ev contract.Event) string {
	switch {
	case ev.Conclusion == contract.Skipped:
		return " (skipped)"
	case ev.Outcome == contract.Failure && ev.Conclusion == contract.Success:
		return " (failed, continue-on-error)"
	case ev.ExitCode != nil && *ev.ExitCode != 0:
		return fmt.Sprintf(" (exit code %d)", *ev.ExitCode)
	}
	return ""
}

func took(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return fmt.Sprintf("  %s", (time.Duration(ms) * time.Millisecond).Round(100*time.Millisecond))
}

func (p *printer) done(res *result) {
	p.job(res.run.Name, "%s job %s in %s", mark(res.conclusion), res.conclusion, res.took.Round(100*time.Millisecond))
}

// summary lists every job with its result.
func (p *printer) summary(all []*result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	width := 0
	for _, res := range all {
		width = max(width, len(res.run.Name))
	}
	fmt.Fprintf(p.out, "\n%s\n", strings.Repeat("─", width+30))
	for _, res := range all {
		line := fmt.Sprintf("%s %-*s  %-9s", mark(res.conclusion), width, res.run.Name, res.conclusion)
		if res.took > 0 {
			line += fmt.Sprintf("  %s", res.took.Round(100*time.Millisecond))
		}
		if res.note != "" {
			line += "  (" + res.note + ")"
		}
		fmt.Fprintln(p.out, line)
	}
}
