package main

import (
	"context"
	"fmt"
	"os"
)

func cmdRun(context.Context, []string) int {
	fmt.Fprintln(os.Stderr, "solstice run: not available yet: the job plan translation is still being built")
	return 1
}
