package expr

import (
	"errors"
	"fmt"
	"strings"
)

// function is a callable. Implementations receive the unevaluated argument
// nodes because GitHub evaluates some arguments lazily: format() only the
// ones it references, case() only the branch it takes.
type function struct {
	name     string // GitHub's spelling; lookup ignores case
	min, max int
	odd      bool // case() takes predicate/value pairs plus a default
	call     func(ev *evaluator, c *callNode) (Value, error)
}

func (f *function) checkArity(n int) error {
	switch {
	case n < f.min:
		return fmt.Errorf("too few arguments to %s(): got %d, want at least %d", f.name, n, f.min)
	case n > f.max:
		return fmt.Errorf("too many arguments to %s(): got %d, want at most %d", f.name, n, f.max)
	case f.odd && n%2 == 0:
		return fmt.Errorf("%s() needs an odd number of arguments, got %d", f.name, n)
	}
	return nil
}

// maxArgs is GitHub's cap for variadic functions.
const maxArgs = 255

// Status function names; a condition calling none of them is implicitly
// `success() && (...)`.
var statusFunctions = []string{"success", "failure", "always", "cancelled"}

var builtins = map[string]*function{}

func init() {
	for _, f := range []*function{
		{name: "contains", min: 2, max: 2, call: callContains},
		{name: "startsWith", min: 2, max: 2, call: stringTest(strings.HasPrefix)},
		{name: "endsWith", min: 2, max: 2, call: stringTest(strings.HasSuffix)},
		{name: "format", min: 1, max: maxArgs, call: callFormat},
		{name: "join", min: 1, max: 2, call: callJoin},
		{name: "toJSON", min: 1, max: 1, call: callToJSON},
		{name: "fromJSON", min: 1, max: 1, call: callFromJSON},
		{name: "case", min: 3, max: maxArgs, odd: true, call: callCase},
		{name: "success", call: status(Status.Success)},
		{name: "failure", call: status(Status.Failure)},
		{name: "cancelled", call: status(Status.Cancelled)},
		{name: "always", call: func(*evaluator, *callNode) (Value, error) { return true, nil }},
		{name: "hashFiles", min: 1, max: maxArgs, call: callHashFiles},
	} {
		builtins[strings.ToLower(f.name)] = f
	}
}

// lookupFunction finds a function by name, ignoring case. The status
// functions exist only where the caller supplies a Status and hashFiles
// only where it supplies a hook, mirroring GitHub, which allows them only in
// some places of a workflow.
func lookupFunction(name string, env *Env) (*function, error) {
	f, ok := builtins[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown function %q", name)
	}
	available := true
	switch {
	case f.name == "hashFiles":
		available = env != nil && env.HashFiles != nil
	case isStatusFunction(f.name):
		available = env != nil && env.Status != nil
	}
	if !available {
		return nil, fmt.Errorf("function %s() is not available here", f.name)
	}
	return f, nil
}

func isStatusFunction(name string) bool {
	for _, s := range statusFunctions {
		if s == name {
			return true
		}
	}
	return false
}

func status(pick func(Status) bool) func(*evaluator, *callNode) (Value, error) {
	return func(ev *evaluator, _ *callNode) (Value, error) { return pick(ev.env.Status), nil }
}

// callContains: a string (or other primitive) haystack is searched for the
// needle's text ignoring case; an array is searched for an element loosely
// equal (==) to the needle. Anything else contains nothing.
func callContains(ev *evaluator, c *callNode) (Value, error) {
	hay, err := c.args[0].eval(ev)
	if err != nil {
		return nil, err
	}
	items, isArray := elements(hay)
	if !isPrimitive(hay) && (!isArray || len(items) == 0) {
		return false, nil
	}
	needle, err := c.args[1].eval(ev)
	if err != nil {
		return nil, err
	}
	if !isArray {
		return isPrimitive(needle) && strings.Contains(fold(ToString(hay)), fold(ToString(needle))), nil
	}
	for _, item := range items {
		if equal(needle, normalize(item)) {
			return true, nil
		}
	}
	return false, nil
}

// stringTest builds startsWith/endsWith: case-insensitive on the text of
// two primitives, false for anything else.
func stringTest(test func(s, affix string) bool) func(*evaluator, *callNode) (Value, error) {
	return func(ev *evaluator, c *callNode) (Value, error) {
		s, err := c.args[0].eval(ev)
		if err != nil || !isPrimitive(s) {
			return false, err
		}
		affix, err := c.args[1].eval(ev)
		if err != nil || !isPrimitive(affix) {
			return false, err
		}
		return test(fold(ToString(s)), fold(ToString(affix))), nil
	}
}

// callJoin joins an array's elements with a separator (',' by default, and
// also when the separator is not a primitive). A primitive joins to its own
// text, an object to the empty string.
func callJoin(ev *evaluator, c *callNode) (Value, error) {
	v, err := c.args[0].eval(ev)
	if err != nil {
		return nil, err
	}
	items, ok := elements(v)
	if !ok {
		if isPrimitive(v) {
			return ToString(v), nil
		}
		return "", nil
	}
	sep := ","
	if len(c.args) > 1 && len(items) > 1 {
		s, err := c.args[1].eval(ev)
		if err != nil {
			return nil, err
		}
		if isPrimitive(s) {
			sep = ToString(s)
		}
	}
	parts := make([]string, len(items))
	size := len(sep) * (len(items) - 1)
	for i, item := range items {
		parts[i] = ToString(normalize(item))
		size += len(parts[i])
	}
	if size > ev.room() {
		return nil, c.memoryError()
	}
	return ev.sized(c, strings.Join(parts, sep))
}

func callToJSON(ev *evaluator, c *callNode) (Value, error) {
	v, err := c.args[0].eval(ev)
	if err != nil {
		return nil, err
	}
	room := ev.room()
	var b strings.Builder
	if !writeJSON(&b, normalize(v), 0, room) {
		return nil, c.memoryError()
	}
	return ev.sized(c, b.String())
}

func callFromJSON(ev *evaluator, c *callNode) (Value, error) {
	v, err := c.args[0].eval(ev)
	if err != nil {
		return nil, err
	}
	r, err := ParseJSON([]byte(ToString(v)))
	if err != nil {
		return nil, c.errorf("fromJSON: %v", err)
	}
	return r, nil
}

// callCase returns the value after the first true predicate, else the last
// argument. Predicates must be booleans, not merely truthy.
func callCase(ev *evaluator, c *callNode) (Value, error) {
	last := len(c.args) - 1
	for i := 0; i < last; i += 2 {
		pred, err := c.args[i].eval(ev)
		if err != nil {
			return nil, err
		}
		b, ok := pred.(bool)
		if !ok {
			return nil, c.errorf("case: predicate %d is %s, not a boolean", i/2+1, kindOf(pred))
		}
		if b {
			return c.args[i+1].eval(ev)
		}
	}
	return c.args[last].eval(ev)
}

func callHashFiles(ev *evaluator, c *callNode) (Value, error) {
	patterns := make([]string, len(c.args))
	for i, a := range c.args {
		v, err := a.eval(ev)
		if err != nil {
			return nil, err
		}
		patterns[i] = ToString(v)
	}
	h, err := ev.env.HashFiles(patterns)
	if err != nil {
		return nil, c.errorf("hashFiles: %v", err)
	}
	return h, nil
}

// callFormat replaces {N} with the text of argument N. '{{' and '}}' are
// literal braces; any other brace, a missing argument or a format specifier
// ({0:x}) is an error, as in GitHub. Arguments are evaluated on first use.
func callFormat(ev *evaluator, c *callNode) (Value, error) {
	fv, err := c.args[0].eval(ev)
	if err != nil {
		return nil, err
	}
	f := ToString(fv)
	args := &lazyArgs{ev: ev, nodes: c.args[1:], done: make([]*string, len(c.args)-1)}
	out, err := expandFormat(f, args, ev.room())
	if err != nil {
		var fe formatError
		switch {
		case errors.Is(err, errTooLong):
			return nil, c.memoryError()
		case errors.As(err, &fe):
			return nil, c.errorf("format: %v", err)
		}
		return nil, err
	}
	return ev.sized(c, out)
}

type formatError string

func (e formatError) Error() string { return string(e) }

type lazyArgs struct {
	ev    *evaluator
	nodes []node
	done  []*string
}

func (a *lazyArgs) get(i int) (string, error) {
	if a.done[i] == nil {
		v, err := a.nodes[i].eval(a.ev)
		if err != nil {
			return "", err
		}
		s := ToString(v)
		a.done[i] = &s
	}
	return *a.done[i], nil
}

// errTooLong stops expandFormat once the text passes its limit.
var errTooLong = errors.New("format: text too long")

func expandFormat(f string, args *lazyArgs, limit int) (string, error) {
	invalid := formatError(fmt.Sprintf("invalid format string %q", f))
	var b strings.Builder
	for i := 0; i < len(f); {
		if b.Len() > limit {
			return "", errTooLong
		}
		l, r := indexFrom(f, '{', i), indexFrom(f, '}', i)
		switch {
		case l >= 0 && (r < 0 || l < r):
			if l+1 < len(f) && f[l+1] == '{' {
				b.WriteString(f[i : l+1])
				i = l + 2
				continue
			}
			n, end, ok := readArgIndex(f, l+1)
			if !ok || r == l+1 {
				return "", invalid
			}
			spec, closing, ok := readSpecifiers(f, end)
			if !ok {
				return "", invalid
			}
			if n >= len(args.nodes) {
				return "", formatError(fmt.Sprintf("format string %q references argument {%d}, but only %d arguments were supplied", f, n, len(args.nodes)))
			}
			if spec != "" {
				return "", formatError(fmt.Sprintf("format specifier %q in %q is not supported", spec, f))
			}
			s, err := args.get(n)
			if err != nil {
				return "", err
			}
			b.WriteString(f[i:l])
			b.WriteString(s)
			i = closing + 1
		case r >= 0:
			if r+1 >= len(f) || f[r+1] != '}' {
				return "", invalid
			}
			b.WriteString(f[i : r+1])
			i = r + 2
		default:
			b.WriteString(f[i:])
			i = len(f)
		}
	}
	return b.String(), nil
}

func indexFrom(s string, c byte, from int) int {
	if i := strings.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

// readArgIndex reads the decimal argument number at s[i:], which like
// GitHub's must fit in a byte; end is the index just after the digits.
func readArgIndex(s string, i int) (n, end int, ok bool) {
	end = i
	for end < len(s) && '0' <= s[end] && s[end] <= '9' {
		if n = n*10 + int(s[end]-'0'); n > 255 {
			return 0, 0, false
		}
		end++
	}
	return n, end, end > i
}

// readSpecifiers reads an optional ":spec" up to the closing '}' (where
// '}}' stands for a literal '}') and returns the spec and the closing index.
func readSpecifiers(s string, i int) (spec string, closing int, ok bool) {
	if i < len(s) && s[i] == '}' {
		return "", i, true
	}
	if i >= len(s) || s[i] != ':' {
		return "", 0, false
	}
	var b strings.Builder
	for i++; i < len(s); i++ {
		if s[i] != '}' {
			b.WriteByte(s[i])
		} else if i+1 < len(s) && s[i+1] == '}' {
			b.WriteByte('}')
			i++
		} else {
			return b.String(), i, true
		}
	}
	return "", 0, false
}
