package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/nomad"
)

const jobsUsage = `usage:
  solstice jobs sync [-dir DIR] [-test-labels] [nomad options]
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

const syncUsage = `usage: solstice jobs sync [-dir DIR] [-test-labels] [nomad options]

Registers the label parent jobs in DIR with Nomad, except the test
suite's labels (meta solstice_test_label = "true") unless -test-labels. When the cluster
enforces ACLs it also applies the policies of jobspecs/acl, built into this
binary: the parent policy to each parent job (its dispatches read their
secrets with it) and the shims' policy to the solstice-runners job (the
shims run on its workload identity). Applying policies needs a management
token.
`

func jobsSync(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("jobs sync", flag.ContinueOnError)
	dir := fs.String("dir", "jobspecs/labels", "directory of label parent jobspecs")
	withTest := fs.Bool("test-labels", false, "also register the test suite's labels (meta solstice_test_label = \"true\", e.g. solstice-test)")
	var nf nomadFlags
	nf.add(fs)
	if code, ok := parseFlags(fs, syncUsage, args); !ok {
		return code
	}
	cfg := nf.config()
	c, err := api.NewClient(cfg)
	if err != nil {
		return exitCode("solstice jobs sync", fmt.Errorf("nomad client: %w", err))
	}
	return exitCode("solstice jobs sync", syncJobs(ctx, &nomad.Client{API: c}, namespaceOf(cfg), *dir, *withTest))
}

// syncJobs registers the parent jobs and, with ACLs on, applies the
// policies.
func syncJobs(ctx context.Context, c *nomad.Client, namespace, dir string, withTest bool) error {
	files, err := nomad.ParentFiles(dir)
	if err != nil {
		return err
	}
	synced, err := c.SyncLabels(ctx, files, withTest)
	var ids []string
	for _, s := range synced {
		if s.Skipped {
			fmt.Printf("skipped %s (runs-on: %s) from %s: a test label (-test-labels registers it)\n", s.JobID, s.Label, s.File)
			continue
		}
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
