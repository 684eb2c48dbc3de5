// Package runner executes a job plan inside the guest with the semantics of
// GitHub's runner (actions/runner) for `run` steps, and reports what
// happens as an event stream (package events). It is the heart of
// solstice-guest; the references below are to the runner's C# sources.
//
// # Directories
//
// Under the root directory (solstice-guest's --root, /var/tmp/solstice by
// default): work/<repository name> is GITHUB_WORKSPACE (runner.workspace
// is work/), temp/ is RUNNER_TEMP (emptied when a job starts), tools/ is
// RUNNER_TOOL_CACHE, events.jsonl the event stream, agent.pid the running
// agent's pid. The event payload is written to
// temp/_github_workflow/event.json (github.event_path).
//
// # Steps
//
// Steps run in order. Before each step the env context is built (job env
// and GITHUB_ENV writes, then the step's env evaluated against them), the
// display name is expanded, and the `if:` condition is evaluated with
// expr.EvaluateCondition and the job's status (an empty condition is
// success(), one without a status function is success() && (…)). A false
// condition skips the step; an evaluation error fails it. Every step emits
// step_started and step_finished, skipped ones included.
//
// A run step (ScriptHandler.cs):
//
//   - shell: the step's, else defaults.run.shell; none given → `bash -e
//     {0}` if bash is on PATH (GITHUB_PATH entries included), else `sh -e
//     {0}`; bash → `bash --noprofile --norc -e -o pipefail {0}`; sh → `sh -e
//     {0}`; python → `python {0}`, and where no `python` exists (OmniOS) →
//     `python3 {0}` (GitHub would fail the step; this is our one
//     deviation); pwsh/powershell → `-command ". '{0}'"` with the runner's
//     script wrapper. Anything else is `command args` split at the first
//     space: the command must be on PATH and the args must contain {0}
//     ("Invalid shell option…" otherwise). {0} is replaced by the script
//     path (with `"` escaped as `\"`) and the argument string is split
//     the way .NET splits a Process argument string (double quotes group,
//     backslashes escape quotes, single quotes are literal).
//   - the script (expressions expanded) is written to
//     RUNNER_TEMP/<uuid><ext> (.sh, .py, .ps1, or none for custom shells);
//   - working directory: the step's, else defaults.run.working-directory,
//     joined onto GITHUB_WORKSPACE (an absolute path wins);
//   - environment, lowest to highest: the agent's own environment, job env,
//     GITHUB_ENV writes, step env, then GITHUB_* (the allow-listed github
//     context values) and RUNNER_* (runner context), GITHUB_ACTIONS=true,
//     and CI=true unless already set. PATH is the GITHUB_PATH entries,
//     newest first, then the env's PATH (or the agent's);
//   - the process runs in its own process group, stdin from /dev/null,
//     stdout and stderr read separately. On cancel or timeout the group gets
//     SIGINT, then SIGTERM after 7.5 s, then SIGKILL after 2.5 s more (the
//     runner's ProcessInvoker timings); leftovers of a cancelled step's
//     group are killed. When the shell exits but something it started
//     keeps its output open, output is read for 5 more seconds and then
//     abandoned, as the runner does. Process groups still alive when the
//     job ends are killed (the runner's orphan process clean-up);
//   - a non-zero exit fails the step: "Process completed with exit code
//     N." (a process killed by a signal exits with 128+N, as .NET reports).
//
// File commands (FileCommandManager.cs): each step gets fresh empty files
// in RUNNER_TEMP/_runner_file_commands for GITHUB_ENV, GITHUB_PATH,
// GITHUB_OUTPUT, GITHUB_STATE and GITHUB_STEP_SUMMARY, processed after the
// step in that order of path, env, summary, state, output, also when the
// step failed. `NAME=value` and heredoc `NAME<<DELIM` lines are read,
// whichever of "=" and "<<" comes first deciding; a missing delimiter, or
// a line that is neither, fails the step ("Unable to process file command
// 'env' successfully.") after the pairs before it were applied. NODE_OPTIONS
// is refused in GITHUB_ENV. GITHUB_PATH lines are de-duplicated and
// prepended. The step summary (at most 1 MiB) becomes a step_summary
// event. GITHUB_STATE is accepted and ignored (it only feeds post steps of
// actions, which Solstice does not run).
//
// Workflow commands in output (ActionCommandManager.cs, ActionCommand.cs):
// `::name k=v,…::data` (after leading white space) and the legacy
// `##[name k=v;…]data`, with %25 %0D %0A unescaped in data and also %3A %2C
// in properties. add-mask masks the value and each of its lines; group and
// endgroup become "##[group]title"/"##[endgroup]" lines; error, warning and
// notice (file, line, col, endLine, endColumn, title) become readable
// system lines with an annotation; debug is shown only when the
// ACTIONS_STEP_DEBUG secret or variable is true (which also turns on the
// echo of commands, as `::echo::on` does); stop-commands suspends command
// processing until `::TOKEN::`; set-env and add-path are refused unless
// ACTIONS_ALLOW_UNSECURE_COMMANDS is true; set-output and save-state work
// with GitHub's deprecation warning (the runner still processes them).
// add-matcher and remove-matcher are acknowledged with a warning: problem
// matchers are not implemented. A command that fails ("Unable to process
// command …") fails the step.
//
// Results (StepsRunner.cs): continue-on-error turns a failure into outcome
// failure, conclusion success. timeout-minutes (fractions allowed) fails
// the step with "The action '<name>' has timed out after N minutes.". After
// a failure, later steps are skipped unless their condition says otherwise
// (always(), failure()). Cancel (Job.Cancel) and the job's timeout cancel
// the running step unless its condition still holds with the job
// cancelled, run the steps whose condition holds (always(), cancelled()),
// each within the cancel timeout (cancel_timeout_minutes, default 5), and
// end the job cancelled, or failed after a timeout. Job outputs are
// evaluated after the last step; an output that contains a secret is
// dropped with a warning ("Skip output '…' since it may contain secret.").
//
// Expressions in run, env, if, with, name, shell and working-directory
// are evaluated just before their step with the contexts github (the
// plan's, plus workspace, job, token, event_path, action and the file
// command paths), env, vars, secrets, matrix, needs, strategy, inputs,
// steps (steps.<id>.outputs/outcome/conclusion), job (status) and runner
// (os is "Linux" on Linux and "illumos" on illumos, GitHub's spellings
// for the rest; arch X64, ARM64, …; name, temp, tool_cache, workspace,
// environment "self-hosted", debug "1" with ACTIONS_RUNNER_DEBUG), and
// hashFiles() over the workspace.
//
// The built-in actions/checkout and the KDL step are described at
// checkout and runKDL.
package runner
