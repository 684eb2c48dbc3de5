package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parser collects errors while it builds the model.
type parser struct {
	file   string
	single bool
	errs   Errors
	src    []byte // the document, to place errors inside values
}

func (p *parser) errorAt(pos Pos, feature, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...), Feature: feature})
}

func (p *parser) errorf(n *yaml.Node, feature, format string, args ...any) {
	p.errorAt(posOf(n), feature, format, args...)
}

func posOf(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

// deref follows YAML aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func hasExpr(s string) bool { return strings.Contains(s, "${{") }

// exprString reports whether n is a string holding ${{ }}.
func exprString(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && hasExpr(n.Value)
}

// firstExpr returns the first string holding ${{ }} in n, or nil.
func firstExpr(n *yaml.Node) *yaml.Node {
	n = deref(n)
	if exprString(n) {
		return n
	}
	for _, c := range n.Content {
		if e := firstExpr(c); e != nil {
			return e
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes the one YAML document in data and returns its root.
func (p *parser) document(data []byte) *yaml.Node {
	p.src = data
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		p.yamlError(err)
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p.errorAt(Pos{more.Line, more.Column}, featYAML, "more than one YAML document")
		return nil
	}
	if !p.checkAliases(&doc) {
		return nil
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.errorf(root, featWorkflow, "a workflow must be a mapping")
		return nil
	}
	return root
}

// maxExpanded bounds what YAML aliases may expand a document to, in
// nodes. yaml.v3 limits aliasing only when it decodes into Go values, not
// into a yaml.Node tree, and the parser walks the tree with aliases
// followed: a few hundred bytes of nested aliases ("billion laughs") would
// otherwise stand for billions of nodes.
const maxExpanded = 1 << 18

// checkAliases rejects an alias that refers to a node containing it (the
// tree walks would recurse forever) and aliases that expand the document
// beyond maxExpanded nodes. It visits each node once.
func (p *parser) checkAliases(doc *yaml.Node) bool {
	a := &aliasCheck{size: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	total := a.expanded(doc)
	switch {
	case a.cycle != nil:
		p.errorf(a.cycle, featYAML, "alias *%s refers to a node that contains it", a.cycle.Value)
		return false
	case a.first != nil && total > maxExpanded:
		p.errorf(a.first, featYAML, "YAML aliases expand the document to more than %d values", maxExpanded)
		return false
	}
	return true
}

type aliasCheck struct {
	size  map[*yaml.Node]int  // expanded size of each node seen, at most maxExpanded+1
	open  map[*yaml.Node]bool // nodes being sized: an alias to one is a cycle
	first *yaml.Node          // the first alias
	cycle *yaml.Node          // an alias inside its own target
}

func (a *aliasCheck) expanded(n *yaml.Node) int {
	if n == nil || a.cycle != nil {
		return 0
	}
	if s, ok := a.size[n]; ok {
		return s
	}
	if a.open[n] {
		return 0
	}
	a.open[n] = true
	total := 1
	children := n.Content
	if n.Kind == yaml.AliasNode {
		if a.first == nil {
			a.first = n
		}
		if a.open[n.Alias] {
			a.cycle = n
		}
		children = []*yaml.Node{n.Alias}
	}
	for _, c := range children {
		total = min(total+a.expanded(c), maxExpanded+1)
	}
	delete(a.open, n)
	a.size[n] = total
	return total
}

func (p *parser) yamlError(err error) {
	if errors.Is(err, io.EOF) {
		p.errorAt(Pos{1, 1}, featYAML, "the file is empty")
		return
	}
	msg, line := err.Error(), 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	p.errorAt(Pos{line, 1}, featYAML, "%s", msg)
}

// field is one key of a mapping.
type field struct {
	name     string
	key, val *yaml.Node
}

func fieldVal(fs []field, name string) *yaml.Node {
	for _, f := range fs {
		if f.name == name {
			return f.val
		}
	}
	return nil
}

// fields returns the keys of mapping n; ok is false when n is no mapping.
func (p *parser) fields(n *yaml.Node, what, feature string) (fs []field, ok bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, feature, "%s must be a mapping", what)
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, feature, "a key in %s is not a string", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k, feature, "duplicate key %q in %s (first at %d:%d)", k.Value, what, prev.Line, prev.Column)
			continue
		}
		seen[k.Value] = k
		fs = append(fs, field{k.Value, k, v})
	}
	return fs, true
}

// unknownKey reports a key that is not in known, suggesting a near one.
func (p *parser) unknownKey(k *yaml.Node, where, feature string, known []string) {
	if s := suggest(k.Value, known); s != "" {
		feature = fmt.Sprintf("did you mean %q?", s)
	}
	p.errorf(k, feature, "unknown key %q in %s", k.Value, where)
}

// str returns a scalar's text ("" for null).
func (p *parser) str(n *yaml.Node, feature, what string) string {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, feature, "%s must be a string", what)
		return ""
	}
	if n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}

// strList accepts a string or a list of strings.
func (p *parser) strList(n *yaml.Node, feature, what string) (vals []string, pos []Pos) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return []string{p.str(n, feature, what)}, []Pos{posOf(n)}
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, feature, "%s must be a string or a list of strings", what)
		return nil, nil
	}
	for _, c := range n.Content {
		vals = append(vals, p.str(c, feature, what))
		pos = append(pos, posOf(deref(c)))
	}
	return vals, pos
}

// pairs reads a mapping of names to strings (env, with, outputs).
func (p *parser) pairs(n *yaml.Node, feature, what string) []Pair {
	if isNull(n) {
		return nil
	}
	if exprString(n) {
		p.errorf(n, feature, "%s from an expression is not supported", what)
		return nil
	}
	fs, _ := p.fields(n, what, feature)
	out := make([]Pair, 0, len(fs))
	for _, f := range fs {
		out = append(out, Pair{f.name, p.str(f.val, feature, fmt.Sprintf("%s value %q", what, f.name)), posOf(f.key)})
	}
	return out
}

// toValue converts a YAML node to string, bool, int64, float64, nil,
// []any or Map.
func toValue(n *yaml.Node) any {
	n = deref(n)
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = toValue(c)
		}
		return out
	case yaml.MappingNode:
		out := make(Map, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, KV{deref(n.Content[i]).Value, toValue(n.Content[i+1])})
		}
		return out
	}
	return scalarValue(n)
}

func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i
		}
		fallthrough
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	}
	return n.Value
}
