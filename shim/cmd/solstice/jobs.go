package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"

	"github.com/solstice-ci/solstice/shim/nomad"
)

const jobsUsage = `usage:
  solstice jobs sync [-dir DIR] [nomad options]
  solstice jobs list [nomad options]

The runs-on catalog: each label is a parameterized parent job. sync
registers the jobspecs of DIR; list prints every label and alias.
Run 'solstice jobs <subcommand> -h' for the options.
`

func cmdJobs(ctx context.Context, args []string) int {
	return group("jobs", jobsUsage, map[string]func([]string) int{
		"sync": func(a []string) int { return jobsSync(ctx, a) },
		"list": func(a []string) int { return jobsList(ctx, a) },
	}, args)
}

func jobsSync(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("jobs sync", flag.ContinueOnError)
	dir := fs.String("dir", "jobspecs/labels", "directory of label parent jobspecs")
	var nf nomadFlags
	nf.add(fs)
	if code, ok := parseFlags(fs, "usage: solstice jobs sync [options]\n\nRegisters the label parent jobs in DIR.\n", args); !ok {
		return code
	}
	c, err := nf.client()
	if err != nil {
		return exitCode("solstice jobs sync", err)
	}
	files, err := nomad.ParentFiles(*dir)
	if err == nil {
		var synced []nomad.Synced
		synced, err = (&nomad.Client{API: c}).Sync(ctx, files)
		for _, s := range synced {
			fmt.Printf("registered %s (runs-on: %s) from %s\n", s.JobID, s.Label, s.File)
		}
	}
	return exitCode("solstice jobs sync", err)
}

func jobsList(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
	var nf nomadFlags
	nf.add(fs)
	if code, ok := parseFlags(fs, "usage: solstice jobs list [options]\n\nPrints every runs-on label and alias of the cluster's catalog.\n", args); !ok {
		return code
	}
	c, err := nf.client()
	if err != nil {
		return exitCode("solstice jobs list", err)
	}
	cat, err := (&nomad.Client{API: c}).Catalog(ctx)
	if err != nil {
		return exitCode("solstice jobs list", err)
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
