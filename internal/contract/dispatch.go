package contract

import (
	"bytes"
	"fmt"
	"strings"
)

// ParentPrefix starts the name of every label's parent job.
const ParentPrefix = "solstice-"

// ParentJob is the parameterized job for a catalog label.
func ParentJob(label string) string { return ParentPrefix + label }

// TaskName is the task of every parent job that runs the VM.
const TaskName = "job"

// GroupName is the group that holds TaskName: a shim that may not stop
// jobs stops a dispatch by scaling this group to zero.
const GroupName = "job"

// Meta keys every dispatched job carries. They are how a restarted shim
// finds its jobs again.
const (
	MetaForge      = "solstice_forge"
	MetaInstance   = "solstice_instance"
	MetaTaskID     = "solstice_task_id"
	MetaRepository = "solstice_repository"
	MetaRun        = "solstice_run"
	MetaJobName    = "solstice_job_name"
	MetaSecretsKey = "solstice_secrets_key"
	MetaBundleURL  = "solstice_bundle_url" // solstice run only
)

// Meta keys of a parent job: the catalog label it runs and the aliases
// that name the same image.
const (
	MetaLabel   = "solstice_label"
	MetaAliases = "solstice_aliases"
	// MetaTestLabel = "true" marks a parent job that only tests and demos
	// use (solstice-test): solstice jobs sync skips it unless asked, so a
	// production catalog never offers a label no client serves.
	MetaTestLabel = "solstice_test_label"
)

// SecretsPrefix is where job secrets live as Nomad Variables; the parent
// jobspec's template reads exactly one of them into the task's secrets dir.
const SecretsPrefix = "solstice/secrets/"

// PayloadLimit is Nomad's dispatch payload limit (DispatchPayloadSizeLimit).
const PayloadLimit = 16 * 1024

// EventsPath is where the driver appends a task's events, relative to the
// allocation directory; the byte offset in it is every reader's resume
// token.
func EventsPath(task string) string { return "alloc/solstice/" + task + "/events.jsonl" }

// GuestRoot is the agent's directory in the guest when --root is not
// given: /var/tmp exists on illumos and Linux alike, is on disk, and is
// writable by every user.
const GuestRoot = "/var/tmp/solstice"

// AgentPath is where the driver puts the agent in the guest.
const AgentPath = GuestRoot + "/bin/solstice-guest"

// The agent's verbs: `solstice-guest VERB --root DIR ...`.
const (
	AgentRun    = "run"    // run the plan (secrets on stdin), writing the events
	AgentFollow = "follow" // print the events from a byte offset (--from) until the job ends
	AgentCancel = "cancel" // cancel the running job
)

// AgentCommand is the shell command that runs the agent's verb on the job
// under GuestRoot; args are trusted words (flags, numbers, paths we chose).
func AgentCommand(verb string, args ...string) string {
	return strings.Join(append([]string{AgentPath, verb, "--root", GuestRoot}, args...), " ")
}

// EncodePayload writes the plan as the dispatch payload: gzip-compressed
// JSON within Nomad's payload limit.
func EncodePayload(p *Plan) ([]byte, error) {
	var buf bytes.Buffer
	if err := EncodePlanCompressed(&buf, p); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	if buf.Len() > PayloadLimit {
		return nil, fmt.Errorf("job %q: the plan is %d bytes compressed, over Nomad's %d-byte dispatch payload limit (long scripts? move them into the repository)", p.Job.ID, buf.Len(), PayloadLimit)
	}
	return buf.Bytes(), nil
}
