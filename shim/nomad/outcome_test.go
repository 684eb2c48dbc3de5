package nomad

import (
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

func TestOutcome(t *testing.T) {
	finished := func(code int, problem string) Status {
		return Status{Stage: Finished, ExitCode: code, Problem: problem}
	}
	tests := []struct {
		name string
		end  *contract.Event
		st   Status
		want Result
	}{
		{"the guest's success", &contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Success}, finished(0, ""),
			Result{contract.Success, contract.ExitSuccess, ""}},
		// The guest's word wins over the exit code it was turned into.
		{"the guest's failure", &contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Failure}, finished(contract.ExitInfrastructure, "lost"),
			Result{contract.Failure, contract.ExitJobFailed, ""}},
		{"the guest's cancel, VM still up", &contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Cancelled}, Status{Stage: Running},
			Result{contract.Cancelled, contract.ExitCancelled, ""}},
		{"infra_error", &contract.Event{Type: contract.TypeInfraError, Message: "no git"}, finished(contract.ExitInfrastructure, ""),
			Result{contract.Failure, contract.ExitInfrastructure, "no git"}},
		{"stopped before placement", nil, finished(contract.ExitCancelled, "cancelled before it was placed"),
			Result{contract.Cancelled, contract.ExitCancelled, "cancelled before it was placed"}},
		{"lost node", nil, finished(contract.ExitInfrastructure, "the Nomad client running the job was lost"),
			Result{contract.Failure, contract.ExitInfrastructure, "the Nomad client running the job was lost"}},
		{"a drain's stop, which the guest saw as a cancel", &contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Cancelled},
			Status{Stage: Finished, ExitCode: contract.ExitInfrastructure, Problem: "moved off beta", Displaced: true},
			Result{contract.Failure, contract.ExitInfrastructure, "moved off beta"}},
		{"the guest's success just before a drain", &contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Success},
			Status{Stage: Finished, ExitCode: contract.ExitInfrastructure, Problem: "moved off beta", Displaced: true},
			Result{contract.Success, contract.ExitSuccess, ""}},
		{"no word, no reason", nil, finished(contract.ExitJobFailed, ""),
			Result{contract.Failure, contract.ExitInfrastructure, "the task exited with code 1: job failed"}},
		{"no word, still running", nil, Status{Stage: Running},
			Result{contract.Failure, contract.ExitInfrastructure, "the task had not stopped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Outcome(tt.end, tt.st); got != tt.want {
				t.Fatalf("Outcome = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A task the driver ended with an error says why.
func TestStatusOfTerminatedWithMessage(t *testing.T) {
	ts := taskState("dead", &api.TaskEvent{Type: api.TaskTerminated, ExitCode: 3, Message: "the VM went away before the job finished"})
	code, problem := exitOf(ts[contract.TaskName])
	if code != contract.ExitInfrastructure || problem != "the VM went away before the job finished" {
		t.Fatalf("exitOf = %d, %q", code, problem)
	}
}
