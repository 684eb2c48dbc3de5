// Command solstice-guest runs a Solstice job plan inside the VM and reports
// what happens as a stream of JSON events.
//
// Usage:
//
//	solstice-guest run [--root DIR] [--detach [--follow]] PLAN_FILE   < secrets.json
//	solstice-guest follow [--root DIR] [--from OFFSET]
//	solstice-guest cancel [--root DIR]
//	solstice-guest serve [--root DIR] [--port PATH] [--user NAME] [--detach]
//	solstice-guest version
//
// run executes the plan (JSON, or gzip-compressed JSON; see package plan)
// with the job's secrets read as one JSON object {"NAME": "value", …} from
// stdin — never from the command line or a file, so they appear in no
// process listing and on no disk. Send the object, or close stdin for a job
// without secrets. The events go to DIR/events.jsonl and, in the
// foreground, to stdout as well (package events). The exit code is 0 when
// the job succeeded, 1 when it failed, 2 when it was cancelled and 3 when
// it could not run (the task exit codes of driver/exitcode).
//
// With --detach, run starts the job in a new session and returns as soon
// as the events file exists and the job has its secrets (exit 0, or 3 if
// it could not start), so the SSH session that started it may end while
// the job runs; the job's own stderr goes to DIR/agent.log.
//
// follow prints the events from byte offset OFFSET of DIR/events.jsonl to
// stdout, each line exactly as stored (so a reader can count bytes to get
// the next offset), waiting for more until the job finishes. It exits 0
// after job_finished or infra_error, and 3 if the agent is gone without
// finishing the stream.
//
// cancel signals the running agent (SIGTERM, pid in DIR/agent.pid): the
// current step is cancelled, steps with always() or cancelled() still run,
// and the job ends cancelled. SIGINT and SIGTERM sent to `run` directly do
// the same. It exits 0, also when no job is running.
//
// serve (run as root) is how a warm clone's job starts without SSH: a
// warm template leaves it running on the virtio-serial port named
// org.solstice.agent (or --port PATH), where it waits for a host to
// connect; the template is saved and restored while it waits. On the port
// (frames of package contract) a clone's driver sends the clone's identity,
// which serve applies in-process (clock, random state, login key, host
// key, host name, machine id) and answers; then either release, and serve
// exits, or a job to start: serve writes DIR/plan.json, starts the job
// detached as the login user (as `run --detach` would, secrets on its
// stdin), sends its events from offset 0 as data frames (as `follow`
// prints them) and the follow's status as an exit frame, and exits. The
// DHCP lease and sshd's reload with the new host key come once the job's
// first events are sent (or at release): they would compete with the
// job's start for the guest's CPU. With --user, the job's process for
// that login user is started at once and waits (holding no job, claiming
// nothing) for a clone's job, which then needs no program start; a
// process no job comes for is ended. With --detach it starts
// itself in a new session (stderr appended to DIR/serve.log) and returns
// 0 once the port is open, or 3.
//
// Directories default to /var/tmp/solstice (see package runner).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/solstice-ci/solstice/internal/contract"
)

// version is set at build time (-X main.version=…).
var version = "dev"

const usage = `usage:
  solstice-guest run [--root DIR] [--detach [--follow]] PLAN_FILE   (secrets as a JSON object on stdin)
  solstice-guest follow [--root DIR] [--from OFFSET]
  solstice-guest cancel [--root DIR]
  solstice-guest serve [--root DIR] [--port PATH] [--user NAME] [--detach]   (as root)
  solstice-guest version`

// exitUsage is the exit code for a command line the agent cannot act on:
// like any other failure to run the job, it is an infrastructure error.
const exitUsage = 3

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, "solstice-guest", version)
		return 0
	case contract.AgentRun:
		return cmdRun(args[1:], stdin, stdout, stderr)
	case detachedChild:
		return cmdDetachedChild(args[1:], stdin, stderr)
	case contract.AgentFollow:
		return cmdFollow(args[1:], stdout, stderr)
	case contract.AgentCancel:
		return cmdCancel(args[1:], stderr)
	case contract.AgentServe:
		return cmdServe(args[1:], stderr)
	case servedChild:
		return cmdServeChild(args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "solstice-guest: unknown command %q\n%s\n", args[0], usage)
	return exitUsage
}
