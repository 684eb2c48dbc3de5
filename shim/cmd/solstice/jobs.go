package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/nomad"
)

func cmdJobs(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: solstice jobs sync [-dir DIR] | solstice jobs list")
		return 2
	}
	c, err := api.NewClient(api.DefaultConfig()) // NOMAD_ADDR, NOMAD_TOKEN, …
	if err != nil {
		fmt.Fprintln(os.Stderr, "solstice jobs:", err)
		return 1
	}
	switch args[0] {
	case "sync":
		return jobsSync(ctx, c, args[1:])
	case "list":
		return jobsList(ctx, c)
	}
	fmt.Fprintf(os.Stderr, "solstice jobs: unknown subcommand %q\n", args[0])
	return 2
}

func jobsSync(ctx context.Context, c *api.Client, args []string) int {
	fs := flag.NewFlagSet("jobs sync", flag.ContinueOnError)
	dir := fs.String("dir", "jobspecs/labels", "directory of label parent jobspecs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	files, err := nomad.ParentFiles(*dir)
	if err == nil {
		var synced []nomad.Synced
		synced, err = (&nomad.Client{API: c}).Sync(ctx, files)
		for _, s := range synced {
			fmt.Printf("registered %s (runs-on: %s) from %s\n", s.JobID, s.Label, s.File)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "solstice jobs sync:", err)
		return 1
	}
	return 0
}

func jobsList(ctx context.Context, c *api.Client) int {
	cat, err := (&nomad.Client{API: c}).Catalog(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "solstice jobs list:", err)
		return 1
	}
	for _, n := range slices.Sorted(maps.Keys(cat)) {
		if cat[n] == n {
			fmt.Println(n)
		} else {
			fmt.Printf("%s (alias of %s)\n", n, cat[n])
		}
	}
	return 0
}
