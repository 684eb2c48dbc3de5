// Package github is Solstice's runner for GitHub Actions (github.com and
// GitHub Enterprise Server): the heart of `solstice github`. Each
// registered runner holds one broker session; every job GitHub hands it
// becomes a dispatched Nomad job (shim/nomad), and the shim reports
// that job back through GitHub's own runner protocol (shim/github/protocol)
// so it shows in GitHub's UI like any hosted runner's: step states, live
// console lines, each step's log, outputs and the conclusion.
//
// # Life of a job
//
// A runner (runner.go) polls the broker with status Online, or Busy while
// its job runs (GitHub sends cancellations on that poll). A RunnerJobRequest
// is acknowledged when GitHub asks, then acquired from the run service; the
// acquired message is recorded in a Nomad Variable (store.go) before
// anything else, so a restarted shim finds it. prepare.go turns the
// message into a job plan: run steps and actions/checkout become plan
// steps with their expressions unevaluated (the guest evaluates them),
// contextData becomes the plan's contexts, and secrets go to the dispatch's
// secret store, never into the payload or meta. Any other action fails the
// job before dispatch, naming it.
//
// The job (task.go) renews its lock every Timing.Renew with the job token
// (renew.go) and follows the dispatched job's event stream; the reporter
// (report.go) turns events into GitHub's step records ("Set up job", the
// job's steps, "Complete job"), sends WorkflowStepsUpdate on every
// transition, streams lines to the live console feed, uploads each step's
// log as a sealed append blob when the step ends and finally completes the
// job with its conclusion, outputs and step results.
//
// # Statelessness and restarts
//
// The shim keeps no local state. Runner credentials (the RSA key among
// them) and the record of every acquired job live in Nomad Variables; the
// record also names the job's dispatch and lists the steps whose logs are
// already stored. A restarted shim first renews each recorded job's lock
// (a job GitHub gave up is dropped, never run again), finds its dispatch
// in Nomad (or dispatches it, when the shim died in between), renders the
// job again from the start of its event stream and uploads only the step
// logs GitHub does not have yet: every job completes once, and the stored
// logs have no missing or repeated line (the live console may show lines
// of the step that was running again). Dispatches no record owns are
// stopped and their secrets removed.
//
// Failures are retried with backoff; what GitHub refuses for good (a 4xx
// on a log upload) is logged and skipped, and the final report is given up
// after about ten minutes, so a runner is never stuck on one job.
package github
