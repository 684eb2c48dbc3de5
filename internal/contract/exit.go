package contract

// The task exit codes.
const (
	ExitSuccess        = 0 // the job ran and succeeded (or a plain VM powered off)
	ExitJobFailed      = 1 // the job ran and a step failed it
	ExitCancelled      = 2 // the job was stopped before it finished
	ExitInfrastructure = 3 // image, boot, SSH, guest agent or QEMU failure
)

// DescribeExit names a code for people.
func DescribeExit(code int) string {
	switch code {
	case ExitSuccess:
		return "success"
	case ExitJobFailed:
		return "job failed"
	case ExitCancelled:
		return "cancelled"
	case ExitInfrastructure:
		return "infrastructure failure"
	}
	return "unknown"
}

// ExitFor is the task exit code of a job whose job_finished event has
// the given conclusion.
func ExitFor(conclusion string) int {
	switch conclusion {
	case Success:
		return ExitSuccess
	case Cancelled:
		return ExitCancelled
	}
	return ExitJobFailed
}
