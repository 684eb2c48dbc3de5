// Package forgejo is Solstice's runner for Forgejo and Gitea Actions: the
// heart of `solstice forgejo`. It speaks the forge's runner protocol
// (runner.v1 over Connect, as Gitea's and Forgejo's own runners do) and
// turns every task the forge hands it into a dispatched Nomad job
// (shim/nomad), then reports that job back: step states, log rows, job
// outputs and the result.
//
// # Life of a task
//
// The poller (poller.go) calls FetchTask with the last tasks_version it saw
// while fewer than Config.Capacity tasks are in flight. A fetched task is
// translated at once (prepare.go: the single-job payload, the github
// context without its token, vars, needs and secret names become a job
// plan; secret values go to the dispatch's secret store) and dispatched.
// A task Solstice cannot run (unknown runs-on label, an action other than
// actions/checkout, invalid YAML, a refused dispatch) fails at once with
// log rows that say why: the protocol cannot hand a task back.
//
// A dispatched job waits in Nomad's queue until a client has room; the
// forge log says so. The task (task.go) then follows the job's event
// stream through Nomad and the renderer (render.go) turns it into log rows
// and step states; the reporter (reporter.go) sends them with UpdateLog
// and UpdateTask, heartbeats every few seconds, and learns from the
// UpdateTask response when the forge cancelled the task, which stops the
// Nomad job.
//
// # Statelessness and restarts
//
// The shim keeps no state of its own. The runner's uuid and token live in a
// Nomad Variable (credentials.go); the tasks in flight are the dispatched
// jobs Nomad lists for this runner (nomad.Client.InFlight; resume.go). Every log row is a
// pure function of the job's event stream and of facts Nomad keeps (when
// the job was dispatched and placed, where, how it ended), so a restarted
// shim rebuilds each task's rows from offset 0 of the events file, asks
// the forge how many rows it already stored (the UpdateLog ack_index) and
// sends only the rest: nothing is missing or repeated. While the forge is
// unreachable the shim retries with backoff and the events file holds
// what was not sent yet; an authentication failure stops the shim with a
// clear message instead of being retried forever.
//
// The protocol cannot hand a fetched task back, and Gitea never delivers a
// task twice: a shim that dies between FetchTask and the dispatch loses
// that task, which the forge fails after its zombie timeout.
//
// # Metrics
//
// Metrics.Handler serves /metrics (Prometheus text format: tasks by state,
// finished tasks by result, dispatch and first-step latency, forge API
// calls and errors, log rows not yet stored) and /healthz (503 while the
// forge or Nomad failed its last call).
//
// # Testing
//
// Nomad is behind the nomad.Jobs interface so the protocol can be tested
// against an in-process fake forge without a cluster; the production
// implementation is nomad.Client.
package forgejo
