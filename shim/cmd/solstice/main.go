// Command solstice is Solstice's CLI: the Forgejo/Gitea and GitHub runner
// shims, `solstice run` for workflows without a forge, and catalog tools.
package main

import (
	"fmt"
	"os"
)

// version is set at build time.
var version = "dev"

const usage = `usage: solstice <command> [arguments]

commands:
  run        run a workflow file through Nomad, without a forge
  version    print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version", "--version":
		fmt.Println("solstice", version)
	case "run":
		fmt.Fprintln(os.Stderr, "solstice run: not available yet: it needs the dispatch layer (shim/dispatch), which is not built yet")
		os.Exit(1)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "solstice: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
