package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
)

// errAgentGone means the stream stopped short: the agent is not running
// and did not write job_finished or infra_error.
var errAgentGone = errors.New("the agent is not running and the job's event stream has no end (the agent crashed or was killed)")

// agentGrace is how long the agent must be seen gone before follow gives
// up, so that a job that is just starting is not mistaken for a dead one.
var agentGrace = 3 * time.Second

func cmdFollow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("follow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", contract.GuestRoot, "directory of the job")
	from := fs.Int64("from", 0, "byte offset to start at (0, or one reported before)")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 || *from < 0 {
		fmt.Fprintf(stderr, "solstice-guest: follow takes --root and --from only\n%s\n", usage)
		return exitUsage
	}
	return followEvents(*root, *from, stdout, stderr)
}

// followEvents prints the events of the job under root from byte offset
// from, each line as stored, until the job's stream ends.
func followEvents(root string, from int64, stdout, stderr io.Writer) int {
	layout := runner.NewLayout(root)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go watchAgent(ctx, layout, cancel)
	out := bufio.NewWriterSize(stdout, 64<<10)
	err := contract.FollowLines(ctx, layout.Events, from, func(line []byte, _ contract.Event, _ int64) error {
		out.Write(line)
		out.WriteByte('\n')
		return out.Flush()
	})
	if err != nil {
		if errors.Is(err, context.Canceled) && context.Cause(ctx) != nil {
			err = context.Cause(ctx)
		}
		fmt.Fprintf(stderr, "solstice-guest: follow: %v\n", err)
		return runner.ExitInfrastructure
	}
	return 0
}

// watchAgent cancels ctx once the agent has been gone for agentGrace.
func watchAgent(ctx context.Context, layout runner.Layout, cancel context.CancelCauseFunc) {
	var goneSince time.Time
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, alive := agentPID(layout); alive {
			goneSince = time.Time{}
			continue
		}
		if goneSince.IsZero() {
			goneSince = time.Now()
		} else if time.Since(goneSince) >= agentGrace {
			cancel(errAgentGone)
			return
		}
	}
}
