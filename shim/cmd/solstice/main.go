// Command solstice is Solstice's CLI: `solstice run` for workflows without a
// forge, the runner shims, and tools for the label catalog.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// version is set at build time.
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, args []string) int
}

var commands = map[string]command{
	"run":      {"run a workflow file's jobs through Nomad, without a forge", cmdRun},
	"validate": {"check workflow files for what Solstice cannot run", cmdValidate},
	"jobs":     {"register the label parent jobs (jobs sync) or list the catalog (jobs list)", cmdJobs},
	"forgejo":  {"the runner shim for Forgejo and Gitea Actions (forgejo register, forgejo run)", cmdForgejo},
	"github":   {"the runner shim for GitHub Actions (github register, github run, github remove)", cmdGitHub},
	"image":    {"the image catalog as the cluster sees it (image list), pre-pull (image pull) and verify (image verify)", cmdImage},
	"cache":    {"the actions/cache service for Forgejo/Gitea jobs (cache serve)", cmdCache},
	"version":  {"print the version", cmdVersion},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: solstice <command> [arguments]\n\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'solstice <command> -h' for a command's options; 'solstice --version' prints the version.")
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	switch {
	case len(args) == 0:
		usage(os.Stderr)
		return exitUsage
	case isHelp(args[0]) && len(args) > 1: // solstice help run
		return dispatch([]string{args[1], "-h"})
	case isHelp(args[0]):
		usage(os.Stdout)
		return exitOK
	case args[0] == "--version" || args[0] == "-version":
		return cmdVersion(context.Background(), nil)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "solstice: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return exitUsage
	}
	// The first interrupt cancels the context (commands clean up: solstice
	// run stops its Nomad jobs); a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return cmd.run(ctx, args[1:])
}

const versionUsage = `usage: solstice version

Prints the version (as solstice --version does).
`

func cmdVersion(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, versionUsage, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(fs, versionUsage, "unexpected argument %q", fs.Arg(0))
	}
	fmt.Println("solstice", version)
	return exitOK
}
