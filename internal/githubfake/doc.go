// Package githubfake is a test double: an in-process, deliberately strict
// fake of the GitHub endpoints a self-hosted Actions runner talks to.
//
// One httptest.Server stands in for every host involved in the broker /
// run-service flow of actions/runner:
//
//	/api/v3/...  and  /...     REST API (GHES-style and github.com-style paths)
//	/auth/token                OAuth authorization_url (client_assertion JWT)
//	/broker/                   broker: session, message, acknowledge
//	/run/                      run service: acquirejob, renewjob, completejob
//	/results/twirp/...         results service (twirp JSON, snake_case)
//	/blob/...                  Azure append-blob emulation (signed URLs)
//	/feed/{jobID}              live console websocket
//
// The wire formats follow the official runner (github.com/actions/runner)
// field by field; see the file comments for the exact source each one was
// checked against. Every request the fake refuses, and every protocol
// violation it notices while still serving a request, is recorded as a
// Rejection so a test can assert that the client made no protocol mistake:
//
//	if r := srv.Rejections(); len(r) > 0 { t.Fatalf("fake rejected: %v", r) }
//
// Typical use:
//
//	srv := githubfake.New(githubfake.Options{})
//	defer srv.Close()
//	jit := srv.JITConfig("runner-1", []string{"self-hosted", "illumos"})
//	job := srv.QueueJob(githubfake.JobSpec{Labels: []string{"illumos"}, Steps: ...})
//	// start the shim with jit ...
//	res, err := job.Wait(ctx)
//
// It is not a general GitHub emulator: only the runner protocol is covered,
// and only the broker path (no legacy pipelines/timeline APIs).
package githubfake
