package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/shim/nomad"
)

const imagePullUsage = `usage: solstice image pull [options] IMAGE

Fetches the catalog image IMAGE (a label or an alias) into the image cache
of chosen Nomad clients, so the first job there does not wait for the
download. By default every client whose solstice-vm driver is healthy and
offers IMAGE, except those that already have it cached (-all includes
them); -node picks clients by id, id prefix or name. It runs as a short
batch job (solstice-image-pull-IMAGE) in the namespace given, prints each
client's download progress and result, and purges the job at the end.
Exit status: 0 every client has the image, 1 a client failed (named on
stderr) or Nomad could not be asked, 2 a usage error.
`

const imageVerifyUsage = `usage: solstice image verify [options] IMAGE

Re-hashes the cached copy of the catalog image IMAGE on chosen Nomad
clients against the catalog's sha256 (an image compressed at its source
is checked with qemu-img instead: the catalog's checksum is of the
compressed download). Each client says ok, not cached, or the mismatch:
a corrupt image is removed, so the next job fetches it again. By default
every client whose solstice-vm driver is healthy and offers IMAGE; -node
picks clients by id, id prefix or name. Runs as a short batch job
(solstice-image-verify-IMAGE), purged at the end.
Exit status: 0 no client has a corrupt copy, 1 a client failed or had a
corrupt copy (named on stderr) or Nomad could not be asked, 2 a usage
error.
`

// nodeList is a repeatable -node flag.
type nodeList []string

func (n *nodeList) String() string { return strings.Join(*n, ",") }
func (n *nodeList) Set(v string) error {
	if v == "" {
		return errors.New("empty node")
	}
	*n = append(*n, v)
	return nil
}

func imageAction(ctx context.Context, action string, args []string) int {
	usage, cmd := imagePullUsage, "solstice image "+action
	if action == nomad.ImageVerify {
		usage = imageVerifyUsage
	}
	fs := flag.NewFlagSet("image "+action, flag.ContinueOnError)
	var nf nomadFlags
	var nodes nodeList
	all := false
	fs.Var(&nodes, "node", "a client to run on: its node id, id prefix or name (repeatable; default: every client that offers IMAGE)")
	if action == nomad.ImagePull {
		fs.BoolVar(&all, "all", false, "also pull on clients that already report IMAGE cached")
	}
	nf.add(fs)
	if code, ok := parseFlags(fs, usage, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, usage, "want one IMAGE, got %d arguments", fs.NArg())
	}
	if all && len(nodes) > 0 {
		return usageError(fs, usage, "-all and -node exclude each other")
	}
	c, err := nf.client()
	if err != nil {
		return exitCode(cmd, err)
	}
	client := &nomad.Client{API: c}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	images, err := client.Images(lctx)
	cancel()
	if err != nil {
		return exitCode(cmd, err)
	}
	image := fs.Arg(0)
	targets, skipped, err := chooseTargets(images, image, nodes, action == nomad.ImagePull && !all)
	if err != nil {
		return exitCode(cmd, err)
	}
	for _, s := range skipped {
		fmt.Printf("%s: already cached (use -all to pull anyway)\n", s)
	}
	if len(targets) == 0 {
		fmt.Printf("no client to %s %s on\n", action, image)
		return exitOK
	}
	job, err := nomad.ImageJob(action, image, nf.config().Namespace, targets)
	if err != nil {
		return exitCode(cmd, err)
	}
	results, err := client.RunImageJob(ctx, job, targets, func(node, msg string) {
		fmt.Printf("%s: %s\n", node, msg)
	})
	if err != nil {
		return exitCode(cmd, err)
	}
	return reportImageResults(os.Stdout, os.Stderr, cmd, image, results)
}

// chooseTargets picks the clients: those named by -node (each must offer
// the image), else every healthy one offering it. With skipCached, a
// client that reports the image cached is left out (returned in skipped).
func chooseTargets(images []nomad.NodeImage, image string, nodes []string, skipCached bool) (targets []nomad.ImageTarget, skipped []string, err error) {
	offers := map[string]nomad.NodeImage{} // by node id
	var ids []string
	for _, img := range images {
		if img.Label == image {
			offers[img.NodeID] = img
			ids = append(ids, img.NodeID)
		}
	}
	// An alias's attributes name its label, whose cached state counts.
	cached := map[string]bool{}
	for _, img := range images {
		if o, ok := offers[img.NodeID]; ok && img.Label == labelOf(o) && img.Cached == "true" {
			cached[img.NodeID] = true
		}
	}
	if len(nodes) > 0 {
		ids, err = pickNodes(images, nodes, offers, image)
		if err != nil {
			return nil, nil, err
		}
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		o := offers[id]
		switch {
		case !o.Healthy && len(nodes) == 0:
			continue
		case skipCached && cached[id]:
			skipped = append(skipped, o.Node)
			continue
		}
		targets = append(targets, nomad.ImageTarget{NodeID: id, Node: o.Node})
	}
	if len(targets) == 0 && len(skipped) == 0 {
		return nil, nil, fmt.Errorf("no client whose solstice-vm driver is healthy offers image %q (see solstice image list)", image)
	}
	return targets, skipped, nil
}

func labelOf(img nomad.NodeImage) string {
	if img.AliasOf != "" {
		return img.AliasOf
	}
	return img.Label
}

// pickNodes resolves -node values (id, id prefix or name) to node ids.
func pickNodes(images []nomad.NodeImage, nodes []string, offers map[string]nomad.NodeImage, image string) ([]string, error) {
	names := map[string]string{} // every solstice-vm client: id → name
	for _, img := range images {
		names[img.NodeID] = img.Node
	}
	var ids []string
	for _, want := range nodes {
		var match []string
		for id, name := range names {
			if id == want || name == want || strings.HasPrefix(id, want) {
				match = append(match, id)
			}
		}
		switch {
		case len(match) == 0:
			return nil, fmt.Errorf("-node %s: no client with the solstice-vm driver has that id or name (see solstice image list)", want)
		case len(match) > 1:
			return nil, fmt.Errorf("-node %s: names %d clients; give more of the id", want, len(match))
		}
		if _, ok := offers[match[0]]; !ok {
			return nil, fmt.Errorf("-node %s: client %s does not offer image %q (see solstice image list)", want, names[match[0]], image)
		}
		ids = append(ids, match[0])
	}
	return ids, nil
}

// reportImageResults prints one line per client and the exit status: a
// failure on any client is named on stderr.
func reportImageResults(out, errOut io.Writer, cmd, image string, results []nomad.ImageResult) int {
	var failed []string
	for _, r := range results {
		line := r.Node + ": " + r.Outcome
		if r.Detail != "" {
			line += ": " + r.Detail
		}
		fmt.Fprintln(out, line)
		if r.Failed() {
			failed = append(failed, r.Node)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(errOut, "%s: %s failed on %d of %d clients: %s\n", cmd, image, len(failed), len(results), strings.Join(failed, ", "))
		return exitFail
	}
	return exitOK
}
