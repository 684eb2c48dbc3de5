//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// TestHarnessRunsRawExecJob proves the harness itself: a real Nomad agent
// takes a batch job, runs it to completion and hands back its output.
func TestHarnessRunsRawExecJob(t *testing.T) {
	n := StartNomad(t, WithRawExec())
	n.RunJob(`
job "hello" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello from nomad; echo to-stderr >&2"]
      }
    }
  }
}`)
	alloc := n.WaitComplete("hello", 2*time.Minute)
	if alloc.ClientStatus != api.AllocClientStatusComplete {
		t.Fatalf("alloc ended %s: %s", alloc.ClientStatus, describe(alloc))
	}
	if got := n.Logs(alloc, "t", "stdout"); !strings.Contains(got, "hello from nomad") {
		t.Fatalf("stdout = %q", got)
	}
	if got := n.Logs(alloc, "t", "stderr"); !strings.Contains(got, "to-stderr") {
		t.Fatalf("stderr = %q", got)
	}
}
