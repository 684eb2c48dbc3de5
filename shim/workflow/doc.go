// Package workflow reads GitHub Actions workflow files and turns them into
// the set of job runs GitHub would create from them.
//
// It serves two callers. `solstice run` (and `solstice validate`) parse a
// whole workflow with [Parse], expand every job's strategy matrix with
// [Workflow.Runs] exactly as GitHub's MatrixBuilder does (same combinations,
// same order, same display names), order the runs by `needs` with [Order],
// and map each run's runs-on labels to a catalog image with [ResolveLabel].
// The Forgejo/Gitea shim receives single jobs whose matrix the forge already
// expanded; it parses them with [ParseSingleJob] and gets the same model.
//
// Everything is checked before anything is dispatched, and every problem is
// reported (not just the first) as FILE:LINE:COL: what (feature). Solstice
// runs `run` steps and the actions the guest agent has built in
// (actions/checkout, upload-artifact@v4, download-artifact@v4, cache, the
// KDL action); reusable workflows, container jobs, service containers and
// other actions are rejected.
//
// Values that may hold ${{ }} expressions are kept as strings: the guest
// evaluates them in the VM. The only evaluation done here is what GitHub does
// on its server before a job exists: the matrix (literal values, plus
// fromJSON of a literal string), and ${{ matrix.KEY }} references in a job's
// name, runs-on and timeout-minutes / continue-on-error.
package workflow
