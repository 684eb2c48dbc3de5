package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/nomad"
)

func cmdJobs(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: solstice jobs sync [-dir DIR] | solstice jobs list")
		return 2
	}
	cfg := api.DefaultConfig() // NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, …
	c, err := api.NewClient(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "solstice jobs:", err)
		return 1
	}
	switch args[0] {
	case "sync":
		return jobsSync(ctx, c, namespaceOf(cfg), args[1:])
	case "list":
		return jobsList(ctx, c)
	}
	fmt.Fprintf(os.Stderr, "solstice jobs: unknown subcommand %q\n", args[0])
	return 2
}

const syncUsage = `usage: solstice jobs sync [-dir DIR]

Registers the label parent jobs in DIR with Nomad (NOMAD_ADDR, NOMAD_TOKEN,
NOMAD_NAMESPACE). When the cluster enforces ACLs it also applies the
policies of jobspecs/acl, built into this binary: the parent policy to each
parent job (its dispatches read their secrets with it) and the shims'
policy to the solstice-runners job (the shims run on its workload
identity). Applying policies needs a management token.

options:
`

func jobsSync(ctx context.Context, c *api.Client, namespace string, args []string) int {
	fs := flag.NewFlagSet("jobs sync", flag.ContinueOnError)
	dir := fs.String("dir", "jobspecs/labels", "directory of label parent jobspecs")
	fs.Usage = func() { fmt.Fprint(os.Stderr, syncUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := syncJobs(ctx, &nomad.Client{API: c}, namespace, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "solstice jobs sync:", err)
		return 1
	}
	return 0
}

// syncJobs registers the parent jobs and, with ACLs on, applies the
// policies.
func syncJobs(ctx context.Context, c *nomad.Client, namespace, dir string) error {
	files, err := nomad.ParentFiles(dir)
	if err != nil {
		return err
	}
	synced, err := c.Sync(ctx, files)
	var ids []string
	for _, s := range synced {
		fmt.Printf("registered %s (runs-on: %s) in namespace %s from %s\n", s.JobID, s.Label, namespace, s.File)
		ids = append(ids, s.JobID)
	}
	if err != nil {
		return err
	}
	acl, err := c.ACLEnabled(ctx)
	if err != nil || !acl {
		return err
	}
	pols, err := nomad.LoadPolicies(jobspecs.ACL)
	if err != nil {
		return err
	}
	applied, err := c.ApplyPolicies(ctx, pols, namespace, ids)
	for _, a := range applied {
		fmt.Printf("applied ACL policy %s to job %s in namespace %s\n", a.Policy, a.JobID, a.Namespace)
	}
	return err
}

// namespaceOf is the namespace the client works in, as Nomad's CLI
// would pick it.
func namespaceOf(cfg *api.Config) string {
	if cfg.Namespace == "" {
		return api.DefaultNamespace
	}
	return cfg.Namespace
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
