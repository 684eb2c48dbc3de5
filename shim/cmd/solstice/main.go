// Command solstice is Solstice's CLI: `solstice run` for workflows without a
// forge, the runner shims, and tools for the label catalog.
package main

import (
	"context"
	"fmt"
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
	"version":  {"print the version", cmdVersion},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: solstice <command> [arguments]\n\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'solstice <command> -h' for a command's options.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "solstice: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	// The first interrupt cancels the context (commands clean up: solstice
	// run stops its Nomad jobs); a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(cmd.run(ctx, os.Args[2:]))
}

func cmdVersion(context.Context, []string) int {
	fmt.Println("solstice", version)
	return 0
}
