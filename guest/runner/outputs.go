package runner

import (
	"fmt"
	"maps"
	"slices"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// jobOutputs evaluates the plan's outputs after the last step
// (JobExtension.FinalizeJob): empty values are left out, and a value that
// contains a secret is dropped with a warning, as GitHub does. An
// evaluation error fails the job.
func (j *Job) jobOutputs() map[string]string {
	out := map[string]string{}
	if len(j.plan.Outputs) == 0 {
		return out
	}
	j.system(contract.JobLevel, "Evaluate and set job outputs")
	s := &stepRun{index: contract.JobLevel, stepState: &stepState{}}
	ee := j.exprEnv(s, j.globalEnv())
	for _, name := range slices.Sorted(maps.Keys(j.plan.Outputs)) {
		v, err := expr.EvaluateTemplate(j.plan.Outputs[name], ee)
		if err != nil {
			j.errorLine(contract.JobLevel, "Fail to evaluate job outputs")
			j.errorLine(contract.JobLevel, err.Error())
			j.mu.Lock()
			j.failed = true
			j.mu.Unlock()
			return out
		}
		val := expr.ToString(v)
		switch {
		case val == "":
			j.debug(contract.JobLevel, fmt.Sprintf("Skip output '%s' since it's empty", name))
		case j.masker.Contains(val):
			j.warning(contract.JobLevel, fmt.Sprintf("Skip output '%s' since it may contain secret.", name))
		default:
			j.system(contract.JobLevel, fmt.Sprintf("Set output '%s'", name))
			out[name] = val
		}
	}
	return out
}
