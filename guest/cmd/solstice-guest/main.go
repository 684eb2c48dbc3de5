// Command solstice-guest runs a Solstice job plan inside the VM and reports
// what happens as a stream of JSON events.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("solstice-guest", version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: solstice-guest version")
	os.Exit(2)
}
