package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/solstice-ci/solstice/shim/workflow"
)

const validateUsage = `usage: solstice validate WORKFLOW.yml|WORKFLOW.kdl...

Reports, with file:line:col, everything in the workflows that Solstice
cannot run. Exits 1 when a file has a problem.
`

func cmdValidate(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	if code, ok := parseFlags(fs, validateUsage, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return usageError(fs, validateUsage, "want at least one workflow file")
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
