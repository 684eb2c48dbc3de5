package expr

import (
	"strings"
	"unicode/utf8"
)

const (
	openExpr  = "${{"
	closeExpr = "}}"
)

// Interpolate expands every `${{ expr }}` in a workflow string (a `run`
// script, an `env` or `with` value, a working-directory) and returns the
// text. Values print as ToString prints them. As in GitHub, a string that is
// exactly one `${{ }}` must not evaluate to an array or object (that is an
// error, "expected a string"), while inside surrounding text those print as
// "Array" and "Object". A `}}` inside a quoted string does not end an
// expression. Text without `${{` is returned unchanged.
func Interpolate(tmpl string, env *Env) (string, error) {
	v, err := EvaluateTemplate(tmpl, env)
	if err != nil {
		return "", err
	}
	if k := kindOf(v); k == kindArray || k == kindObject {
		return "", &Error{Expr: tmpl, Msg: "expected a string, but the expression evaluates to " + ToString(v)}
	}
	return ToString(v), nil
}

// EvaluateTemplate is Interpolate for places that accept any value (such as
// a `with:` input or a matrix built with fromJSON): a string that is exactly
// one `${{ }}` yields the expression's value with its type; otherwise the
// result is the expanded string.
func EvaluateTemplate(tmpl string, env *Env) (Value, error) {
	env = orEmpty(env)
	n, err := parseTemplate(tmpl, env)
	if err != nil {
		return nil, err
	}
	v, err := n.eval(&evaluator{src: tmpl, env: env})
	return export(v), err
}

// parseTemplate parses every `${{ }}` of tmpl before anything is evaluated,
// as GitHub validates a whole value up front. A template that is exactly one
// expression becomes that expression; one with surrounding text becomes a
// concatNode (GitHub's format('text{0}', expr)); plain text, a literal.
func parseTemplate(tmpl string, env *Env) (node, error) {
	var parts []node
	for i := 0; i < len(tmpl); {
		start := strings.Index(tmpl[i:], openExpr)
		if start < 0 {
			parts = append(parts, &literal{v: tmpl[i:]})
			break
		}
		start += i
		if start > i {
			parts = append(parts, &literal{v: tmpl[i:start]})
		}
		end := closingBraces(tmpl, start+len(openExpr))
		if end < 0 {
			return nil, &Error{Expr: tmpl, Col: column(tmpl, start), Msg: "unclosed ${{: no matching }}"}
		}
		src := strings.TrimSpace(tmpl[start+len(openExpr) : end])
		if src == "" {
			return nil, &Error{Expr: tmpl, Col: column(tmpl, start), Msg: "expected an expression inside ${{ }}"}
		}
		n, err := parse(src, env)
		if err != nil {
			return nil, err
		}
		parts = append(parts, n)
		i = end + len(closeExpr)
	}
	switch {
	case len(parts) == 0:
		return &literal{v: ""}, nil
	case len(parts) == 1:
		return parts[0], nil
	}
	return &concatNode{parts: parts}, nil
}

// closingBraces finds the `}}` that ends an expression whose text starts at
// from, skipping any inside single-quoted strings (a doubled quote
// toggles twice and so needs no special case). It returns -1 if there is none.
func closingBraces(s string, from int) int {
	inString := false
	for i := from; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inString = !inString
		case !inString && s[i] == '}' && s[i-1] == '}' && i-1 >= from:
			return i - 1
		}
	}
	return -1
}

func column(s string, byteOffset int) int {
	return utf8.RuneCountInString(s[:byteOffset]) + 1
}
