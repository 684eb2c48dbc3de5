// Package contract is what the three Solstice programs agree on, in one
// place: the job plan the shims build and the guest agent runs, the event
// stream the agent writes and the driver and shims read, the task exit
// codes, and how a job travels through Nomad (parent job names, dispatch
// meta keys, the payload encoding and its limit, the secrets prefix, where
// the events file lives, the guest's work root and the agent's verbs). The
// driver, the CLI and the agent import it; none of them imports another.
//
// A job plan is everything the Solstice guest agent
// (solstice-guest) needs to run one job of a workflow inside the VM. The
// runner shims and `solstice run` build plans, Nomad carries them as the
// dispatch payload, the solstice-vm driver uploads them into the guest, and
// the agent decodes, validates and runs them.
//
// # The job plan (version 1)
//
// A plan is one JSON object; only "version", "job.id" and "steps" are
// required, every other field may be omitted:
//
//	{"version": 1,
//	 "job": {"id": "build", "name": "build (amd64)", "workflow": "CI"},
//	 "timeout_minutes": 360,          // job timeout; 0 or absent: 360
//	 "cancel_timeout_minutes": 5,     // how long always() steps may run after a cancel; default 5
//	 "defaults": {"run": {"shell": "bash", "working-directory": "src"}},
//	 "env": [{"name": "WF", "value": "x"}],  // workflow env, then job env, in order; ${{ }} allowed
//	 "contexts": {"github": {…}, "matrix": {…}, "needs": {…},
//	              "vars": {…}, "inputs": {…}, "strategy": {…}},
//	 "secrets": ["GITHUB_TOKEN", "MY_SECRET"],  // names only
//	 "outputs": {"version": "${{ steps.v.outputs.version }}"},
//	 "steps": [
//	   {"id": "v", "name": "Compute", "if": "", "continue-on-error": false,
//	    "timeout-minutes": 5, "env": {"A": "1"}, "run": "echo …",
//	    "shell": "", "working-directory": ""},
//	   {"name": "Checkout", "uses": "actions/checkout@v4",
//	    "with": {"repository": "o/r", "ref": "main", "path": "", "fetch-depth": "1",
//	             "submodules": "false", "token": "${{ secrets.GITHUB_TOKEN }}"}},
//	   {"name": "Legacy", "kdl": {"path": ".solstice/workflow.kdl", "job": "illumos-build"}}],
//	 "checkout": {"url": "https://forge.example/o/r.git", "sha": "…",
//	              "ref": "refs/heads/main", "bundle": ""}}
//
// Rules the validator enforces (every problem is reported, each as
// "plan: <field path>: <problem>"):
//
//   - a step is exactly one of: run (a script), uses (only
//     actions/checkout@<any ref>: the agent has a built-in checkout), or
//     kdl (a job of a legacy .solstice/workflow.kdl file in the workspace);
//     with is for uses steps only, shell and working-directory for run
//     steps only;
//   - shell is bash, sh, python, pwsh, powershell, cmd, or a command whose
//     arguments contain {0} (like GitHub, "perl {0}"), or an expression;
//   - continue-on-error is a boolean or an expression string;
//     timeout-minutes a positive number or an expression string (JSON
//     numbers and booleans are accepted where GitHub has them, strings
//     containing ${{ }} are evaluated by the agent just before the step);
//   - step ids are unique and look like GitHub's ([A-Za-z_][A-Za-z0-9_-]*);
//   - secret names are unique identifiers, and contexts.github has no
//     "token": secret values never appear in a plan. The agent reads them
//     from its stdin and sets github.token from the GITHUB_TOKEN secret;
//   - contexts holds only github, matrix, needs, vars, inputs and strategy
//     (env, secrets, steps, job and runner are the agent's), each an object;
//   - a checkout step of the workflow's own repository needs "checkout"
//     with a url or a bundle; one with with.repository naming another
//     repository is fetched from github.server_url.
//
// "checkout.bundle" is the path, inside the guest, of a git bundle the
// driver uploaded: the checkout then clones from that file instead of the
// network (used by `solstice run` for local repositories).
//
// Plans travel as a Nomad dispatch payload of at most 16 KiB:
// EncodeCompressed writes gzip-compressed JSON and DecodeAuto reads either
// form.
//
// # The event stream
//
// The event stream of a job is what the guest agent (solstice-guest)
// reports while it runs a plan, and what the solstice-vm driver and the
// runner shims read back. Follow tails an events file; the agent writes it
// with guest/events.Writer.
//
// The stream is a file of JSON lines (events.jsonl), one event per line,
// each ending in "\n". The byte offset just after a line is the resume
// token of every reader: following again from that offset yields exactly
// the events after it, no gaps and no duplicates. Every event has
//
//	"seq"  1, 2, 3, … strictly increasing, no gaps, within one file
//	"time" RFC 3339, UTC, always nine fractional digits
//	       ("2026-01-02T15:04:05.123456789Z")
//	"type" one of the types below
//
// and, by type (fields not listed are absent; consumers must ignore
// unknown fields and unknown types):
//
//	job_started   "job":{"id","name","workflow"}, "agent" (agent version),
//	              "steps" (number of plan steps)
//	step_started  "step" (plan step index, from 0), "id" (step id, if any),
//	              "name" (display name, expressions expanded)
//	log           "step" (index, or -1 for job-level lines), "stream"
//	              ("stdout", "stderr" or "system"), "line" (the text, no
//	              newline), optionally "kind" and "annotation" (below)
//	step_finished "step", "outcome" and "conclusion" (success, failure,
//	              cancelled, skipped; they differ only under
//	              continue-on-error), "exit_code" (only when a process
//	              ran and exited), "duration_ms", "reason" (why a step was
//	              skipped, cancelled or failed without a process)
//	step_summary  "step", "markdown": the step's GITHUB_STEP_SUMMARY
//	              (masked; at most 1 MiB, as on GitHub)
//	outputs       "outputs": {name: value} job outputs, once, after the last
//	              step (possibly {})
//	job_finished  "conclusion" (success, failure, cancelled),
//	              "duration_ms"; always the last event of a job that ran
//	infra_error   "message": the agent could not run the job (bad plan,
//	              cannot create its directories, …); the last event
//
// Every plan step gets exactly one step_started and one step_finished, in
// index order, skipped steps included (their step_finished follows at
// once). A stream ends with job_finished or infra_error and nothing after.
//
// Log kinds: "group" / "endgroup" (line "##[group]title" / "##[endgroup]",
// the markers GitHub and Gitea render as collapsible sections), "command"
// (an echoed workflow command), "debug" (line "Debug: …"), and "error",
// "warning", "notice" (line "Error: …", "Warning: …", "Notice: …", with
// file:line:col and title in front of the message when given, and an
// "annotation" object {"level","message","file","line","col","end_line",
// "end_column","title"} so a shim can create a forge annotation).
//
// # Log lines
//
// Output of any size or encoding becomes log events without breaking the
// stream and with bounded memory (guest/events.Splitter): it is split at "\n"; a
// "\r\n" ends a line too; a lone "\r" (a progress bar redrawing itself)
// discards what came before it on that line, keeping what a terminal
// would finally show (GitHub's runner would instead start a new line
// at each "\r"); a line longer than 64 KiB is cut into pieces of at most
// 64 KiB (never inside a UTF-8 sequence or a masked secret); invalid UTF-8
// becomes U+FFFD, one per invalid byte.
//
// # Masking
//
// The agent's writer passes every free-text field (names, lines, reasons,
// messages, summaries, annotation texts, output values) through the job's
// mask.Masker before the event is written, so no event carries a secret.
//
// # Task exit codes
//
// The exit code of a finished task is how the solstice-vm driver tells
// whoever reads it (the shims, `solstice run`) whether the job succeeded, failed, was cancelled, or never got a
// fair chance because the infrastructure failed.
package contract
