package expr

import (
	"errors"
	"strings"
)

// Contexts every workflow expression may name somewhere (GitHub's context
// availability table); Check does not know where it is, so it accepts all.
var checkContexts = []string{
	"github", "env", "vars", "job", "jobs", "steps", "runner", "secrets",
	"strategy", "matrix", "needs", "inputs",
}

// CheckOptions says which functions the place being checked allows.
type CheckOptions struct {
	// Condition: an if: value (a bare expression, or a template), where
	// success(), failure(), cancelled() and always() exist.
	Condition bool
}

// Check parses a workflow value without evaluating it, as `solstice
// validate` does: every `${{ }}` of a template, or for a condition a bare
// expression too. A problem comes back as *Error whose Col counts
// characters of s (1-based), so it can be placed in the file.
func Check(s string, o CheckOptions) error {
	env := &Env{Contexts: map[string]Value{}, HashFiles: func([]string) (string, error) { return "", nil }}
	for _, c := range checkContexts {
		env.Contexts[c] = nil
	}
	if o.Condition {
		env.Status = JobSucceeded
	}
	trimmed := strings.TrimSpace(s)
	if o.Condition && !strings.Contains(trimmed, openExpr) {
		_, err := parse(trimmed, env)
		return relocate(err, s, strings.Index(s, trimmed))
	}
	if !strings.Contains(s, openExpr) {
		return nil
	}
	_, err := parseTemplateAt(s, env)
	return err
}

// parseTemplateAt is parseTemplate with the error's column counted in the
// whole template rather than in the one expression.
func parseTemplateAt(tmpl string, env *Env) (node, error) {
	for i := 0; i < len(tmpl); {
		start := strings.Index(tmpl[i:], openExpr)
		if start < 0 {
			break
		}
		start += i
		end := closingBraces(tmpl, start+len(openExpr))
		if end < 0 {
			break // parseTemplate reports it, at the template's column
		}
		inner := tmpl[start+len(openExpr) : end]
		src := strings.TrimSpace(inner)
		if src != "" {
			if _, err := parse(src, env); err != nil {
				return nil, relocate(err, tmpl, start+len(openExpr)+strings.Index(inner, src))
			}
		}
		i = end + len(closeExpr)
	}
	return parseTemplate(tmpl, env)
}

// relocate moves an error in the expression found at byte offset off of s
// to s's own columns.
func relocate(err error, s string, off int) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	moved := *e
	moved.Expr = s
	if moved.Col > 0 {
		moved.Col += column(s, off) - 1
	}
	return &moved
}
