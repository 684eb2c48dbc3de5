package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
)

func cmdCancel(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", contract.GuestRoot, "directory of the job")
	if pos, err := parseInterleaved(fs, args); err != nil || len(pos) > 0 {
		fmt.Fprintf(stderr, "solstice-guest: cancel takes --root only\n%s\n", usage)
		return exitUsage
	}
	layout := runner.NewLayout(*root)
	pid, alive := agentPID(layout)
	if !alive {
		fmt.Fprintln(stderr, "solstice-guest: no job is running")
		return 0
	}
	if err := terminate(pid); err != nil {
		fmt.Fprintf(stderr, "solstice-guest: cancel: signal agent %d: %v\n", pid, err)
		return runner.ExitInfrastructure
	}
	fmt.Fprintf(stderr, "solstice-guest: cancelling the job (agent pid %d)\n", pid)
	return 0
}

// agentPID reads the agent's pid file and says whether that process lives.
func agentPID(layout runner.Layout) (int, bool) {
	data, err := os.ReadFile(layout.PID)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processAlive(pid)
}
