package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/workflow"
)

const validateUsage = `usage: solstice validate [options] WORKFLOW.yml|WORKFLOW.kdl...

Reports, with file:line:col, everything in the workflows that Solstice
cannot run: unsupported syntax, broken ${{ }} expressions and unknown
functions or contexts, unknown shells. With -address or NOMAD_ADDR it
also checks each job's runs-on against the cluster's catalog. Exits 1
when a file has a problem.
`

func cmdValidate(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	var nf nomadFlags
	nf.add(fs)
	if code, ok := parseFlags(fs, validateUsage, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return usageError(fs, validateUsage, "want at least one workflow file")
	}
	catalog := validateCatalog(ctx, &nf)
	bad := 0
	for _, f := range fs.Args() {
		if err := validateFile(f, catalog); err != nil {
			fmt.Fprintln(os.Stderr, err)
			bad++
			continue
		}
		fmt.Printf("%s: ok\n", f)
	}
	if bad > 0 {
		return exitFail
	}
	return exitOK
}

// validateCatalog reads the cluster's runs-on catalog when one is named;
// nil (labels unchecked, said on stderr) when it cannot.
func validateCatalog(ctx context.Context, nf *nomadFlags) map[string]string {
	if !nf.set() {
		return nil
	}
	c, err := nf.client()
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var cat map[string]string
		if cat, err = (&nomad.Client{API: c}).Catalog(ctx); err == nil {
			return cat
		}
	}
	fmt.Fprintf(os.Stderr, "solstice validate: runs-on not checked against the catalog: %v\n", err)
	return nil
}

func validateFile(path string, catalog map[string]string) error {
	w, err := workflow.ParseFile(path) // .kdl or YAML, by extension
	if err != nil {
		return err
	}
	runs, err := w.Runs()
	if err != nil || catalog == nil {
		return err
	}
	_, err = w.ResolveLabels(runs, catalog)
	return err
}
