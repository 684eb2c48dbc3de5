package forgejo

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/solstice-ci/solstice/internal/contract"
)

// FuzzPrepare turns a fuzzed task into a dispatch request as the runner
// does with a task it fetched: the workflow payload, the github context
// (given as JSON, decoded into the protobuf Struct the forge sends), and
// one var and one need output. The task must either be refused as
// unrunnable, the only failure runTask handles (any other error would
// leave it dereferencing a nil request), or yield a plan the agent
// accepts, naming every secret the request carries and no token of the
// context. Inputs over 64 KiB are skipped: forges bound workflow files
// well below that.
func FuzzPrepare(f *testing.F) {
	ctx := `{"repository":"o/r","sha":"abc","ref":"refs/heads/main","server_url":"http://10.210.1.2:3000","run_id":"12","token":"T0K3N","gitea_runtime_token":"RT","event":{"ref":"refs/heads/main","inputs":{"a":1}}}`
	f.Add([]byte(matrixLeg), []byte(ctx), "1")
	f.Add([]byte(strings.Replace(matrixLeg, "actions/checkout@v4", "some/action@v1", 1)), []byte(ctx), "")
	f.Add([]byte("jobs:\n  a: [\n"), []byte(`{}`), "x")
	f.Add([]byte("on: push\njobs:\n  t:\n    runs-on: [self-hosted, solstice-test]\n    timeout-minutes: \"5\"\n    strategy: {job-index: 1, job-total: 3, matrix: {os: [a]}}\n    steps:\n      - uses: solstice-ci/kdl@v1\n        with: {path: w.kdl, job: b}\n"), []byte(`{"event":"not an object","repository":5}`), "")
	f.Add([]byte("on: push\njobs:\n  t:\n    runs-on: ${{ matrix.os }}\n    strategy: {matrix: ${{ fromJSON('{\"os\":[\"solstice-test\"]}') }}}\n    steps: [{run: make}]\n"), []byte(`null`), "")
	f.Fuzz(func(t *testing.T, payload, contextJSON []byte, value string) {
		if len(payload) > 64<<10 || len(contextJSON) > 64<<10 {
			return
		}
		var gh *structpb.Struct
		if s := new(structpb.Struct); protojson.Unmarshal(contextJSON, s) == nil {
			gh = s
		}
		task := &runnerv1.Task{Id: 9, WorkflowPayload: payload, Context: gh,
			Secrets: map[string]string{"GITHUB_TOKEN": "T0K3N", "DEPLOY": "d3pl0y"},
			Vars:    map[string]string{"V": value},
			Needs:   map[string]*runnerv1.TaskNeed{"probe": {Outputs: map[string]string{"out": value}, Result: runnerv1.Result_RESULT_SUCCESS}},
		}
		p, err := prepare(task, testCatalog, "http://forge#r", nil, nil)
		if err != nil {
			var u *unrunnable
			if !errors.As(err, &u) || len(u.lines) == 0 {
				t.Fatalf("prepare failed with %v (%T), want an unrunnable task with a reason", err, err)
			}
			return
		}
		pl, err := contract.DecodePlanAuto(bytes.NewReader(p.req.Plan))
		if err != nil {
			t.Fatalf("prepare made a plan the agent rejects: %v", err)
		}
		for name := range p.req.Secrets {
			if !slices.Contains(pl.Secrets, name) {
				t.Fatalf("secret %q is not named in the plan (plan names %v)", name, pl.Secrets)
			}
		}
		var github map[string]json.RawMessage
		json.Unmarshal(pl.Contexts["github"], &github)
		for k := range github {
			if k == "token" || strings.HasSuffix(k, "_token") {
				t.Fatalf("github.%s went into the plan", k)
			}
		}
	})
}
