package nomad

import (
	"fmt"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Result is how a job ended, as a forge reports it and as solstice run
// prints it and exits with it.
type Result struct {
	Conclusion string // contract.Success, Failure or Cancelled
	Code       int    // the task exit code the result stands for (contract.Exit*)
	// Problem says what went wrong when the guest did not say how the job
	// ended: its infra_error message, or what Nomad knows. It is empty
	// when the guest's job_finished says it all.
	Problem string
}

// Outcome is the one rule for how a job ended. The guest's word comes
// first: its last event (end; nil when none arrived) is job_finished with
// the job's conclusion, or infra_error, a failure. Without it the task's
// end in Nomad decides: stopped means cancelled, anything else is a
// failure of the infrastructure. One exception: a guest's "cancelled"
// after Nomad took the job off its node (Status.Displaced, a drain's
// deadline) is that infrastructure failure, not a cancel anyone asked
// for. The guest's conclusion is never read back from the exit code it
// was turned into.
func Outcome(end *contract.Event, st Status) Result {
	switch {
	case end != nil && end.Type == contract.TypeJobFinished && stoppedByNomad(end, st):
		return Result{Conclusion: contract.Failure, Code: contract.ExitInfrastructure, Problem: st.Problem}
	case end != nil && end.Type == contract.TypeJobFinished:
		return Result{Conclusion: end.Conclusion, Code: contract.ExitFor(end.Conclusion)}
	case end != nil:
		return Result{Conclusion: contract.Failure, Code: contract.ExitInfrastructure, Problem: end.Message}
	case st.Stage == Finished && st.ExitCode == contract.ExitCancelled:
		return Result{Conclusion: contract.Cancelled, Code: contract.ExitCancelled, Problem: st.Problem}
	}
	return Result{Conclusion: contract.Failure, Code: contract.ExitInfrastructure, Problem: problem(st)}
}

// stoppedByNomad is a guest's "cancelled" that nobody asked for: Nomad
// stopped the task to take it off its node (a drain reached its
// deadline), and the guest only saw its steps being cancelled.
func stoppedByNomad(end *contract.Event, st Status) bool {
	return st.Displaced && end.Conclusion == contract.Cancelled
}

// HasProblem says whether a job's end needs Problem shown: nothing the
// guest said covers it.
func (r Result) HasProblem(end *contract.Event, st Status) bool {
	return r.Conclusion != contract.Cancelled && (end == nil || stoppedByNomad(end, st))
}

// problem is why a job ended without the guest's word on it.
func problem(st Status) string {
	switch {
	case st.Problem != "":
		return st.Problem
	case st.Stage != Finished:
		return "the task had not stopped"
	}
	return fmt.Sprintf("the task exited with code %d: %s", st.ExitCode, contract.DescribeExit(st.ExitCode))
}
