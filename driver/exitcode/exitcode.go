// Package exitcode is the contract between the solstice-vm driver and
// whoever reads a finished task (the shims, `solstice run`): the task's exit
// code says whether the job succeeded, failed, was cancelled, or never got a
// fair chance because the infrastructure failed.
package exitcode

// The task exit codes.
const (
	Success        = 0 // the job ran and succeeded (or a plain VM powered off)
	JobFailed      = 1 // the job ran and a step failed it
	Cancelled      = 2 // the job was stopped before it finished
	Infrastructure = 3 // image, boot, SSH, guest agent or QEMU failure
)

// Describe names a code for people.
func Describe(code int) string {
	switch code {
	case Success:
		return "success"
	case JobFailed:
		return "job failed"
	case Cancelled:
		return "cancelled"
	case Infrastructure:
		return "infrastructure failure"
	}
	return "unknown"
}
