package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// FuzzPrepare turns a fuzzed job message into a plan as the shim does
// when it has acquired a job. Either the job is refused as unrunnable (the
// only error the shim knows how to report), or the plan is one the agent
// accepts, with a secret name for every secret value. Inputs over 64 KiB
// are skipped: real job messages are tens of kilobytes.
func FuzzPrepare(f *testing.F) {
	if b, err := os.ReadFile("testdata/job.json"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{"jobId":"j","jobName":"build-1","steps":[{"reference":{"type":"script"},"contextName":"__run","inputs":{"type":2,"map":[{"Key":"script","Value":"make"}]}}],"contextData":{"github":{"t":2,"d":[{"k":"job","v":"build-1"},{"k":"event","v":{"t":2,"d":[{"k":"n","v":1}]}}]}}}`,
		`{"steps":[{"reference":{"type":1,"name":"actions/checkout","ref":"v4"},"inputs":{"type":2,"map":[{"Key":"fetch-depth","Value":"x"},{"Key":"ssh-key","Value":"k"}]}}]}`,
		`{"steps":[{"reference":{"type":"script"},"inputs":{"type":2,"map":[{"Key":"script","Value":"x"},{"Key":"shell","Value":"zsh"}]},"contextName":"1bad","timeoutInMinutes":-1,"continueOnError":"maybe"}],"environmentVariables":[{"type":2,"map":[{"Key":"A=B","Value":1}]}],"defaults":[{"type":2,"map":[{"Key":"run","Value":{"type":2,"map":[{"Key":"shell","Value":"fish"}]}}]}]}`,
		`{"steps":[{"reference":{"type":"script"},"inputs":{"type":2,"map":[{"Key":"script","Value":"x"}]}}],"variables":{"A":{"value":"1","isSecret":true},"a":{"value":"2","isSecret":true},"bad-name":{"value":"3","isSecret":true},"SYSTEM.GITHUB.TOKEN":{"value":"t","isSecret":true}},"contextData":{"matrix":{"t":2,"d":[{"k":"x","v":{"t":1,"a":[null]}}]},"vars":"not a dictionary"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		var msg protocol.JobMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			return
		}
		msg.Raw = data
		newBook(msg.JobID, msg.Steps)
		req, err := prepare(&msg, "solstice-test", "https://github.com/octo", nil)
		if err != nil {
			var u *unrunnable
			if !errors.As(err, &u) || len(u.lines) == 0 {
				t.Fatalf("prepare failed with %v (%T), want an unrunnable job with a reason", err, err)
			}
			return
		}
		p, err := contract.DecodePlanAuto(bytes.NewReader(req.Plan))
		if err != nil {
			t.Fatalf("prepare made a plan the agent rejects: %v", err)
		}
		for name := range req.Secrets {
			if !slices.Contains(p.Secrets, name) {
				t.Fatalf("secret %q is not named in the plan (plan names %v)", name, p.Secrets)
			}
		}
		if len(p.Secrets) != len(req.Secrets) {
			t.Fatalf("the plan names secrets %v, the request carries %d", p.Secrets, len(req.Secrets))
		}
	})
}
