package expr

import (
	"fmt"
	"math"
	"strings"
)

// evaluator carries what nodes need while evaluating.
type evaluator struct {
	src  string // the expression or template, for error messages
	env  *Env
	used int // bytes of strings built so far; see charge
}

// errorf reports an evaluation error at the call; the call carries its own
// source because a template holds several expressions.
func (c *callNode) errorf(format string, args ...any) error {
	return &Error{Expr: c.src, Col: c.col, Msg: fmt.Sprintf(format, args...)}
}

// maxMemory is GitHub's 1 MB budget for one evaluation. Like the runner,
// it counts each built string as UTF-16 (two bytes a character) plus a
// small overhead; unlike the runner it never gives memory back, so it is a
// little stricter for expressions that build many large strings. It keeps
// a runaway format() or toJSON() from exhausting the guest's memory.
const maxMemory = 1 << 20

func (ev *evaluator) charge(s string) bool {
	ev.used += 26 + 2*len(s)
	return ev.used <= maxMemory
}

// sized returns a string a function built, within the memory budget.
func (ev *evaluator) sized(c *callNode, s string) (Value, error) {
	if !ev.charge(s) {
		return nil, c.memoryError()
	}
	return s, nil
}

// room is the length of the longest string charge would still accept.
// Functions that build text stop once they pass it: the budget is checked
// on the finished string, and a short expression can ask for gigabytes
// (format() repeating a large argument, toJSON() indenting a deeply nested
// value, a template repeating a large context value).
func (ev *evaluator) room() int {
	return max((maxMemory-ev.used-26)/2, 0)
}

func (c *callNode) memoryError() error {
	return c.errorf("%s(): the maximum allowed memory size (1 MB) was exceeded", c.fn.name)
}

func (n *literal) eval(*evaluator) (Value, error) { return n.v, nil }

func (n *contextRef) eval(ev *evaluator) (Value, error) {
	v, _ := lookupFold(ev.env.Contexts, n.name)
	return normalize(v), nil
}

func (n *notNode) eval(ev *evaluator) (Value, error) {
	v, err := n.x.eval(ev)
	return !truthy(v), err
}

func (n *compareNode) eval(ev *evaluator) (Value, error) {
	l, err := n.l.eval(ev)
	if err != nil {
		return nil, err
	}
	r, err := n.r.eval(ev)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "<":
		return less(l, r), nil
	case ">":
		return less(r, l), nil
	case "<=":
		return equal(l, r) || less(l, r), nil
	default: // ">="
		return equal(l, r) || less(r, l), nil
	}
}

// eval returns the deciding operand itself, not a boolean: `1 && 'x'` is
// 'x' and `0 || null` is null. Evaluation stops at the deciding operand.
func (n *logicalNode) eval(ev *evaluator) (Value, error) {
	var v Value
	for _, op := range n.ops {
		var err error
		if v, err = op.eval(ev); err != nil {
			return nil, err
		}
		if truthy(v) != n.and {
			return v, nil
		}
	}
	return v, nil
}

func (n *callNode) eval(ev *evaluator) (Value, error) { return n.fn.call(ev, n) }

func (n *concatNode) eval(ev *evaluator) (Value, error) {
	tooBig := &Error{Expr: ev.src, Msg: "the maximum allowed memory size (1 MB) was exceeded"}
	var b strings.Builder
	for _, p := range n.parts {
		v, err := p.eval(ev)
		if err != nil {
			return nil, err
		}
		if b.WriteString(ToString(v)); b.Len() > ev.room() {
			return nil, tooBig
		}
	}
	if !ev.charge(b.String()) {
		return nil, tooBig
	}
	return b.String(), nil
}

// eval applies `.name`, `[key]` or a `*` filter. Accessing something that
// is missing or not a collection yields null (a filter yields an empty
// array); it is never an error. The key is only evaluated when the target is
// a collection, as in GitHub.
func (n *indexNode) eval(ev *evaluator) (Value, error) {
	target, err := n.target.eval(ev)
	if err != nil {
		return nil, err
	}
	k := kindOf(target)
	if k != kindArray && k != kindObject {
		if n.star {
			return &filtered{}, nil
		}
		return nil, nil
	}
	var key Value
	if !n.star {
		if key, err = n.key.eval(ev); err != nil {
			return nil, err
		}
	}
	if f, ok := target.(*filtered); ok {
		return f.apply(key, n.star), nil
	}
	if n.star {
		return &filtered{items: appendAll(nil, target)}, nil
	}
	v, _ := lookup(target, key)
	return v, nil
}

// lookup indexes one array (by the key's number, truncated) or one object
// (by the key's text, ignoring case).
func lookup(target, key Value) (Value, bool) {
	if items, ok := elements(target); ok {
		i, ok := arrayIndex(key)
		if !ok || i >= len(items) {
			return nil, false
		}
		return normalize(items[i]), true
	}
	if !isPrimitive(key) {
		return nil, false
	}
	return property(target, ToString(key))
}

// arrayIndex converts a key to an array position: a number, truncated,
// that is neither negative, NaN nor beyond int32.
func arrayIndex(key Value) (int, bool) {
	f := toNumber(key)
	if math.IsNaN(f) || f < 0 || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// appendAll appends the elements of an array or the values of an object.
func appendAll(dst []Value, v Value) []Value {
	if items, ok := elements(v); ok {
		for _, it := range items {
			dst = append(dst, normalize(it))
		}
		return dst
	}
	for _, it := range entries(v) {
		dst = append(dst, normalize(it))
	}
	return dst
}

// apply maps an accessor over a filter's elements, dropping elements that
// are not collections or lack the key; a `*` flattens one level.
func (f *filtered) apply(key Value, star bool) *filtered {
	out := &filtered{}
	for _, it := range f.items {
		switch k := kindOf(it); {
		case k != kindArray && k != kindObject:
		case star:
			out.items = appendAll(out.items, it)
		default:
			if v, ok := lookup(it, key); ok {
				out.items = append(out.items, v)
			}
		}
	}
	return out
}

// export turns internal values into the public shapes at the API boundary.
func export(v Value) Value {
	if f, ok := v.(*filtered); ok {
		if f.items == nil {
			return []any{}
		}
		return f.items
	}
	return v
}
