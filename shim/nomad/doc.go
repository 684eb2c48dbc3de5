// Package nomad is the shims' Nomad layer: a CI job is a dispatched Nomad
// batch job, and everything the Forgejo and GitHub shims and solstice run
// do with it goes through here. It registers the parent job of each
// runs-on label and reads the label catalog back (parents.go); stores a
// job's secrets where only its task can read them and dispatches it
// (client.go); reads its status with one request per poll (status.go);
// follows its events file through Nomad's file-system API (follow.go);
// cancels and finishes it; and rebuilds the set of jobs in flight from
// Nomad alone (inflight.go), so the shims keep no local state.
//
// A Tracker sees one job through, and Outcome is the one rule for how a
// job ended; both shims and solstice run use them, so a job reads the
// same everywhere.
package nomad
