package workflow

import (
	"fmt"
	"slices"
	"strings"

	"github.com/solstice-ci/solstice/guest/kdl"
)

// shape is what a node may carry. Anything else is an error, so that a
// misspelt name is reported instead of silently ignored.
type shape struct {
	props    []string // allowed property names
	anyProps bool     // env: the properties are the data
	children []string // allowed child node names
	args     int      // at most this many arguments
}

func (d *decoder) checkShape(n *kdl.Node, ctx string, s shape) {
	if n.Type != nil {
		d.failf(n.Pos, "%s: type annotation (%s) has no meaning in a workflow file", ctx, *n.Type)
	}
	for i, a := range n.Args {
		switch {
		case i >= s.args:
			d.failf(a.Pos, "%s: unexpected argument %s%s", ctx, a, argHint(n.Name))
		case a.Type != nil:
			d.failf(a.Pos, "%s: type annotation (%s) has no meaning in a workflow file", ctx, *a.Type)
		}
	}
	for _, p := range n.Props {
		switch {
		case !s.anyProps && !slices.Contains(s.props, p.Name):
			d.failf(p.Pos, "%s: unknown property %q%s", ctx, p.Name, suggest(p.Name, s.props))
		case p.Value.Type != nil:
			d.failf(p.Value.Pos, "%s: type annotation (%s) has no meaning in a workflow file", ctx, *p.Value.Type)
		}
	}
	for _, c := range n.Children {
		if !slices.Contains(s.children, c.Name) {
			d.failf(c.Pos, "%s: %s", ctx, unknownChild(n.Name, c.Name, s.children))
		}
	}
}

// argHint says where the value that was written as an argument belongs.
func argHint(node string) string {
	switch node {
	case "job":
		return ` (write id="..." runs_on="...")`
	case "setup":
		return ` (write path="...")`
	case "workflow":
		return ` (write name="...")`
	}
	return ""
}

func unknownChild(parent, child string, allowed []string) string {
	if len(allowed) == 0 {
		return fmt.Sprintf("%s takes no children block, found node %q", parent, child)
	}
	return fmt.Sprintf("unknown node %q%s", child, suggest(child, allowed))
}

// suggest returns ` (did you mean "x"?)` for the allowed name closest to
// name, when it is close enough to be a likely typo, or "".
func suggest(name string, allowed []string) string {
	norm := strings.ReplaceAll(strings.ToLower(name), "-", "_")
	best, bestDist := "", 3
	for _, a := range allowed {
		if dist := editDistance(norm, a); dist < bestDist && dist < len(a) {
			best, bestDist = a, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, counting a swap of adjacent
// letters as one edit (nmae → name) since that is the commonest typo.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
