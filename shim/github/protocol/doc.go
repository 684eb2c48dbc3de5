// Package protocol is the HTTP client and the wire types of GitHub's
// self-hosted runner protocol, as the official runner (actions/runner)
// speaks it to github.com today:
//
//   - registration through the runner-admin ("v2") flow:
//     actions/runner-registration, runner-groups, actions/runners/register
//     (Register, Remove), or a just-in-time config (ParseJITConfig);
//   - OAuth client-credentials with a signed JWT assertion (TokenSource);
//   - the broker: session, long-poll message, acknowledge (Client);
//   - the run service: acquirejob with the runner token, renewjob and
//     completejob with the job token (Client.AcquireJob, JobClient);
//   - the results service: twirp step updates, step/job logs through
//     signed blob URLs, and the live console websocket (JobClient, Feed).
//
// The legacy pipelines path (connectionData, pools/agents, encrypted
// messages, timelines) is not implemented: a registration that answers
// use_v2_flow=false fails with ErrLegacyFlow.
//
// The runner version matters. Every broker call reports a runner version
// (RunnerInfo.Version), and GitHub refuses to hand jobs to runner releases
// older than about 30 days: the broker then answers with a BrokerError of
// kind RunnerVersionTooOld ("Runner version vX is deprecated and cannot
// receive messages"), and registration with a very old version fails with a
// 404. DefaultRunnerVersion must therefore track current actions/runner
// releases; a shim that keeps running must be rebuilt or configured with a
// newer version regularly.
//
// Field names, casing, enum values and headers follow the official runner
// sources (src/Runner.*, src/Sdk) file by file; see the comments on each
// type. JSON responses are decoded leniently: unknown fields are ignored and
// member names match case-insensitively, as Newtonsoft does for the runner.
package protocol
