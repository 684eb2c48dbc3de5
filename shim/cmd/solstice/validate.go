package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/solstice-ci/solstice/shim/workflow"
)

func cmdValidate(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: solstice validate WORKFLOW.yml|WORKFLOW.kdl...\n\nReports, with file:line:col, everything in the workflows that Solstice cannot run.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	bad := 0
	for _, f := range fs.Args() {
		if err := validateFile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			bad++
			continue
		}
		fmt.Printf("%s: ok\n", f)
	}
	if bad > 0 {
		return 1
	}
	return 0
}

func validateFile(path string) error {
	w, err := workflow.ParseFile(path) // .kdl or YAML, by extension
	if err != nil {
		return err
	}
	_, err = w.Runs()
	return err
}
