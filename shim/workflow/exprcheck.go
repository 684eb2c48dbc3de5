package workflow

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/solstice-ci/solstice/guest/expr"
)

const (
	featExpr  = "expressions"
	featShell = "jobs.<job_id>.steps[*].shell"
)

// checkExpressions parses every `${{ }}` in the workflow, and every if:
// (which may be a bare expression), so a typo is reported with its file
// position before anything runs rather than by the guest mid-job. `on`
// holds no expressions and is skipped.
func (p *parser) checkExpressions(root *yaml.Node) {
	seen := map[*yaml.Node]bool{} // an aliased value is checked once
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		n = deref(n)
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if len(path) == 0 && key == "on" {
					continue
				}
				walk(n.Content[i+1], append(slices.Clone(path), key))
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, append(slices.Clone(path), "[]"))
			}
		case yaml.ScalarNode:
			p.checkExpression(n, isCondition(path))
		}
	}
	walk(root, nil)
}

// isCondition reports whether path is a job's or a step's if:.
func isCondition(path []string) bool {
	n := len(path)
	return n > 0 && path[n-1] == "if" && len(path) >= 3 && path[0] == "jobs" &&
		(n == 3 || n == 5 && path[2] == "steps")
}

func (p *parser) checkExpression(n *yaml.Node, condition bool) {
	err := expr.Check(n.Value, expr.CheckOptions{Condition: condition})
	if err == nil {
		return
	}
	var e *expr.Error
	if !errors.As(err, &e) {
		p.errorf(n, featExpr, "%v", err)
		return
	}
	pos := posOf(n)
	if e.Col > 0 {
		pos = p.valuePos(n, e.Col)
	}
	p.errorAt(pos, featExpr, "%s in %s", e.Msg, quoteExcerpt(n.Value))
}

// quoteExcerpt quotes a value's first line, shortened, for a message.
func quoteExcerpt(v string) string {
	line, _, more := strings.Cut(v, "\n")
	if r := []rune(line); len(r) > 60 {
		line, more = string(r[:60]), true
	}
	if more {
		return `"` + line + `…"`
	}
	return `"` + line + `"`
}

// knownShells are the shell names the guest agent knows without a
// format string (guest/runner's table, less cmd, which is Windows only).
var knownShells = []string{"bash", "sh", "python", "pwsh", "powershell"}

// checkShell reports a shell: the guest could not run: a name that is not
// a known shell, without the {0} a custom command line needs.
func (p *parser) checkShell(n *yaml.Node, feature string) {
	n = deref(n)
	v := strings.TrimSpace(n.Value)
	if n.Kind != yaml.ScalarNode || v == "" || strings.Contains(v, "${{") || strings.Contains(v, "{0}") {
		return
	}
	name, _, _ := strings.Cut(v, " ")
	if !slices.Contains(knownShells, name) {
		p.errorf(n, feature, "unknown shell %q: use one of %s, or a command line with {0} for the script, such as \"perl {0}\"",
			v, strings.Join(knownShells, ", "))
	}
}

// valuePos is the file position of character col (1-based) of scalar n's
// value. The value's lines are found in the source after the node (the
// line holding col only up to col, which is less likely to hold an
// escape), which places plain, quoted and block scalars (run: |) exactly;
// where the source spells the value differently it falls back to the node.
func (p *parser) valuePos(n *yaml.Node, col int) Pos {
	v := n.Value
	off := byteOffset(v, col)
	k := strings.Count(v[:off], "\n")
	lineStart := strings.LastIndexByte(v[:off], '\n') + 1
	lines := strings.Split(v, "\n")
	lines[k] = v[lineStart:off]
	at := p.offsetOf(n.Line, n.Column)
	if at < 0 {
		return posOf(n)
	}
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		at++ // the opening quote
	}
	for i := 0; i <= k; i++ {
		if lines[i] == "" && i < k {
			continue
		}
		j := bytes.Index(p.src[at:], []byte(lines[i]))
		if j < 0 {
			return posOf(n)
		}
		if i == k {
			return p.posAt(at + j + len(lines[i]))
		}
		at += j + len(lines[i])
	}
	return posOf(n)
}

// byteOffset is the byte offset of character col (1-based) of s.
func byteOffset(s string, col int) int {
	off := 0
	for i := 1; i < col && off < len(s); i++ {
		_, size := utf8.DecodeRuneInString(s[off:])
		off += size
	}
	return off
}

// offsetOf is the byte offset of a 1-based line and column of the source;
// -1 when there is no such place.
func (p *parser) offsetOf(line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(p.src[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	rest := p.src[off:]
	if end := bytes.IndexByte(rest, '\n'); end >= 0 {
		rest = rest[:end]
	}
	c := byteOffset(string(rest), col)
	return off + c
}

// posAt is the line and column of a byte offset of the source.
func (p *parser) posAt(off int) Pos {
	before := p.src[:off]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return Pos{Line: bytes.Count(before, []byte{'\n'}) + 1, Col: utf8.RuneCount(before[lineStart:]) + 1}
}
