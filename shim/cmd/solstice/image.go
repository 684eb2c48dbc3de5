package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/solstice-ci/solstice/shim/nomad"
)

const imageUsage = `usage:
  solstice image list [nomad options]
  solstice image pull [-node ID|name ...] [-all] [nomad options] IMAGE
  solstice image verify [-node ID|name ...] [nomad options] IMAGE

The image catalog as the cluster sees it: list shows, for every client
whose solstice-vm driver is healthy, each image it offers, whether it is
already in that client's cache (a first task there downloads it), its
size and checksum. pull fetches an image into chosen clients' caches
ahead of the first job; verify re-hashes the cached copies against the
catalog's sha256 and removes a corrupt one.
Run 'solstice image <subcommand> -h' for the options.
`

func cmdImage(ctx context.Context, args []string) int {
	return group("image", imageUsage, map[string]func([]string) int{
		"list":   func(a []string) int { return imageList(ctx, a) },
		"pull":   func(a []string) int { return imageAction(ctx, nomad.ImagePull, a) },
		"verify": func(a []string) int { return imageAction(ctx, nomad.ImageVerify, a) },
	}, args)
}

func imageList(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("image list", flag.ContinueOnError)
	var nf nomadFlags
	nf.add(fs)
	if code, ok := parseFlags(fs, "usage: solstice image list [options]\n\nLists which client has which catalog image.\n", args); !ok {
		return code
	}
	c, err := nf.client()
	if err != nil {
		return exitCode("solstice image list", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	images, err := (&nomad.Client{API: c}).Images(ctx)
	if err != nil {
		return exitCode("solstice image list", err)
	}
	printImages(images)
	return exitOK
}

func printImages(images []nomad.NodeImage) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tIMAGE\tCACHED\tSIZE\tSHA256")
	for _, img := range images {
		name, cached, size, sum := img.Label, img.Cached, "-", img.SHA256
		switch {
		case img.AliasOf != "":
			name += " (alias of " + img.AliasOf + ")"
			cached, sum = "-", "-"
		case cached == "":
			cached = "unknown"
		}
		if img.Size > 0 {
			size = fmt.Sprintf("%.1f MiB", float64(img.Size)/(1<<20))
		}
		if sum == "" {
			sum = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", img.Node, name, cached, size, sum)
	}
	w.Flush()
}
