// Package watch is what a forge shim needs from Nomad to see a dispatched
// job through: its stage and the facts Nomad keeps about it (Status), its
// event stream, cancelling it and cleaning up after it. Both the Forgejo
// and the GitHub shim use it, so a job looks the same from either forge.
// It also holds the retry backoff both shims use for unreachable services.
package watch
