package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

const kdlWorkflow = `workflow name="CI" {
    env WF="wf"
    job id="illumos-build" runs_on="illumos-latest" workdir="sub" {
        env JOB="job"
        setup path=".solstice/setup.sh"
        step name="Build" run="echo build $WF $JOB $STEP $(basename $(pwd))" {
            env STEP="step"
        }
        step name="Env" run="echo from-setup=$FROM_SETUP plan=$PLAN_ENV"
        step name="Fail" run="exit 4"
        step name="Never" run="echo never"
    }
    job id="slow" runs_on="x" {
        step name="Sleep" run="sleep 30" timeout="1s"
    }
}
`

// prepareKDL writes the workflow and its setup script into the workspace.
func prepareKDL() contract.Step {
	return contract.Step{Run: `mkdir -p .solstice sub
cat > .solstice/workflow.kdl <<'KDL'
` + kdlWorkflow + `KDL
printf 'echo setting up in $(basename $(pwd))\necho FROM_SETUP=yes >> "$GITHUB_ENV"\n' > .solstice/setup.sh`}
}

func TestKDLStep(t *testing.T) {
	p := newPlan(prepareKDL(),
		contract.Step{Name: "Legacy", KDL: &contract.KDL{Path: ".solstice/workflow.kdl", Job: "illumos-build"}, Env: contract.Strings{"PLAN_ENV": "p"}},
		contract.Step{Run: "echo after $FROM_SETUP", If: "always()"},
	)
	r := runJob(t, p)
	r.expect(1, contract.Failure, contract.Failure)
	out := r.output(1)
	for _, want := range []string{"setting up in sub", "build wf job step sub", "from-setup=yes plan=p"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	sys := r.system(1)
	for _, want := range []string{"KDL setup: .solstice/setup.sh", "KDL step: Build", "KDL step: Fail", "Process completed with exit code 4.", `Skipping KDL step "Never"`} {
		if !strings.Contains(sys, want) {
			t.Errorf("missing %q in\n%s", want, sys)
		}
	}
	if strings.Contains(out, "never") {
		t.Error("a KDL step ran after a failure")
	}
	if r.output(2) != "after yes" {
		t.Errorf("GITHUB_ENV from KDL setup: %q", r.output(2))
	}
}

func TestKDLTimeoutAndErrors(t *testing.T) {
	start := time.Now()
	p := newPlan(prepareKDL(),
		contract.Step{KDL: &contract.KDL{Path: ".solstice/workflow.kdl", Job: "slow"}},
		contract.Step{KDL: &contract.KDL{Path: ".solstice/workflow.kdl", Job: "nosuch"}, If: "always()"},
		contract.Step{KDL: &contract.KDL{Path: "missing.kdl", Job: "x"}, If: "always()"},
	)
	r := runJob(t, p)
	r.expect(1, contract.Failure, contract.Failure)
	if !strings.Contains(r.system(1), "The KDL step 'Sleep' has timed out after 1s.") {
		t.Errorf("%s", r.system(1))
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("timeout not applied")
	}
	if !strings.Contains(r.system(2), `has no job "nosuch" (its jobs: illumos-build, slow)`) {
		t.Errorf("%s", r.system(2))
	}
	if !strings.Contains(r.system(3), "open the KDL workflow") {
		t.Errorf("%s", r.system(3))
	}
}
