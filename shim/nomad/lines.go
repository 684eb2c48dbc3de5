package nomad

import (
	"fmt"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// The lines below tell a job's life in Nomad in a forge's log; both
// shims use them, so a job reads the same from either forge. Each is a function of facts that do not change, so a
// restarted shim writes the same lines again.

// DispatchedLines open a dispatched job's log: it waits in Nomad's queue.
func DispatchedLines(job *Job) []string {
	return []string{
		fmt.Sprintf("Solstice: dispatched as Nomad job %s (runs-on label %s)", job.ID, job.Label),
		fmt.Sprintf("Queued: the job waits in Nomad until a client with the %s image has room for it", job.Label),
	}
}

// PlacedLine says where the job was placed and how long it queued.
func PlacedLine(st Status) string {
	return fmt.Sprintf("Placed on Nomad node %s after %s in the queue (allocation %s)",
		orUnknown(st.Node), Round(st.Placed.Sub(st.Submitted)), short(st.AllocID))
}

// VMUpLine says the guest agent started the job, how long the VM took to
// boot and how.
func VMUpLine(ev contract.Event, st Status) string {
	boot := ""
	if !st.Placed.IsZero() {
		boot = fmt.Sprintf(" %s after placement", Round(ev.Time.Sub(st.Placed)))
	}
	detail := ""
	if b, _, _ := strings.Cut(st.Boot, ", ssh on"); b != "" {
		detail = " (" + b + ")" // the SSH port is the driver's business
	}
	agent := ev.Agent
	if agent == "" {
		agent = "unknown version"
	}
	steps := "steps"
	if ev.Steps == 1 {
		steps = "step"
	}
	return fmt.Sprintf("VM up%s%s; guest agent %s runs %d %s", boot, detail, agent, ev.Steps, steps)
}

// CleanupLine says how the Nomad job ended.
func CleanupLine(job *Job, st Status) string {
	return fmt.Sprintf("Cleaning up: Nomad job %s ended with exit code %d (%s)", job.ID, st.ExitCode, contract.DescribeExit(st.ExitCode))
}

// Round rounds a duration for humans: milliseconds below a second,
// tenths above.
func Round(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
