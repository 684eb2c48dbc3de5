// Package localrun is `solstice run`: it runs a workflow file's jobs through
// Nomad without any forge. It snapshots the local repository (uncommitted
// changes included) as a git bundle the Nomad client fetches, dispatches
// each job to its label's parent job in the order `needs` allows, shows
// every job's and step's progress live, and exits with the overall result.
package localrun
