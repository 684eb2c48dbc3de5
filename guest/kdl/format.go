package kdl

import (
	"fmt"
	"sort"
	"strings"
)

// Format prints doc in the canonical form of the KDL test suite
// (tests/README.md in kdl-org/kdl): no comments, one node per line,
// 4-space indents, arguments in order, then properties deduplicated
// (rightmost wins) and sorted by name, then children if any; strings as
// identifiers when possible and otherwise as escaped quoted strings;
// integers in decimal. An empty document prints as a single newline.
func Format(doc *Document) string {
	if len(doc.Nodes) == 0 {
		return "\n"
	}
	var sb strings.Builder
	for _, n := range doc.Nodes {
		writeNode(&sb, n, 0)
	}
	return sb.String()
}

func writeNode(sb *strings.Builder, n *Node, depth int) {
	indent := strings.Repeat("    ", depth)
	sb.WriteString(indent)
	writeType(sb, n.Type)
	writeString(sb, n.Name)
	for _, a := range n.Args {
		sb.WriteByte(' ')
		writeValue(sb, a)
	}
	for _, p := range canonicalProps(n.Props) {
		sb.WriteByte(' ')
		writeString(sb, p.Name)
		sb.WriteByte('=')
		writeValue(sb, p.Value)
	}
	if len(n.Children) > 0 {
		sb.WriteString(" {\n")
		for _, c := range n.Children {
			writeNode(sb, c, depth+1)
		}
		sb.WriteString(indent + "}")
	}
	sb.WriteByte('\n')
}

// canonicalProps dedups (rightmost wins: Props built by hand may repeat a
// name) and sorts by name.
func canonicalProps(props []Prop) []Prop {
	last := make(map[string]Prop, len(props))
	for _, p := range props {
		last[p.Name] = p
	}
	out := make([]Prop, 0, len(last))
	for _, p := range last {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func writeType(sb *strings.Builder, t *string) {
	if t != nil {
		sb.WriteByte('(')
		writeString(sb, *t)
		sb.WriteByte(')')
	}
}

func writeValue(sb *strings.Builder, v Value) {
	writeType(sb, v.Type)
	switch v.Kind {
	case KindString:
		writeString(sb, v.str)
	case KindInt:
		if v.num == nil {
			sb.WriteString("0")
		} else {
			sb.WriteString(v.num.String())
		}
	case KindFloat:
		switch v.str {
		case "inf", "-inf", "nan":
			sb.WriteString("#" + v.str)
		default:
			sb.WriteString(v.str)
		}
	case KindBool:
		fmt.Fprintf(sb, "#%t", v.b)
	default:
		sb.WriteString("#null")
	}
}

func writeString(sb *strings.Builder, s string) {
	if isBareIdent(s) {
		sb.WriteString(s)
		return
	}
	sb.WriteString(quote(s))
}

// quoteIfNeeded returns s as KDL: bare if it can be, else quoted.
func quoteIfNeeded(s string) string {
	if isBareIdent(s) {
		return s
	}
	return quote(s)
}

// isBareIdent reports whether s can be written as an identifier string.
func isBareIdent(s string) bool {
	if s == "" || keywords[s] {
		return false
	}
	w := []rune(s)
	if looksNumeric(w) {
		return false
	}
	for _, r := range w {
		if !isIdentChar(r) {
			return false
		}
	}
	return true
}

var quoteEscapes = map[rune]string{
	'"': `\"`, '\\': `\\`, '\n': `\n`, '\r': `\r`, '\t': `\t`, '\b': `\b`, '\f': `\f`,
}

// quote writes s as a quoted string. Code points that may not appear
// literally (controls, other newlines, bidi controls, BOM) use \u{}.
func quote(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		if e, ok := quoteEscapes[r]; ok {
			sb.WriteString(e)
		} else if isDisallowed(r) || isNewline(r) {
			fmt.Fprintf(&sb, `\u{%x}`, r)
		} else {
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
