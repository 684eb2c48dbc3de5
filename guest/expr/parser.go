package expr

import (
	"fmt"
	"unicode/utf16"
)

// GitHub's limits, kept so that an expression GitHub rejects fails here too.
const (
	maxDepth  = 50    // nesting of the expression tree
	maxLength = 21000 // UTF-16 code units
)

// Syntax tree. Every node evaluates itself; see eval.go.
type (
	node interface {
		eval(ev *evaluator) (Value, error)
	}
	literal    struct{ v Value }
	contextRef struct{ name string }
	// indexNode is both `a.b` (key is the literal "b") and `a[k]`; star
	// marks the `a.*` / `a[*]` filter.
	indexNode struct {
		target, key node
		star        bool
	}
	notNode     struct{ x node }
	compareNode struct {
		op   string
		l, r node
	}
	// logicalNode holds a whole chain `a && b && c`, as GitHub builds it;
	// this matters for the depth limit.
	logicalNode struct {
		and bool
		ops []node
	}
	callNode struct {
		fn   *function
		args []node
		src  string // expression text, for errors
		col  int
	}
	// concatNode is a template with text around its ${{ }} parts; GitHub
	// turns those into format('text{0}text', expr).
	concatNode struct{ parts []node }
)

// parse turns src into a tree, checking context names, function names and
// argument counts as GitHub does before anything runs: an unknown function
// is an error even in a branch that would never be evaluated. An empty
// expression yields a nil node.
func parse(src string, env *Env) (node, error) {
	if n := len(utf16.Encode([]rune(src))); n > maxLength {
		return nil, &Error{Expr: src, Msg: fmt.Sprintf("expression is %d characters long, more than the maximum of %d", n, maxLength)}
	}
	p := &parser{src: src, toks: lex(src), env: env}
	if p.peek().kind == tokEOF {
		return nil, nil
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.unexpected(t)
	}
	if depth(n) > maxDepth {
		return nil, &Error{Expr: src, Msg: fmt.Sprintf("expression is nested more than %d levels deep", maxDepth)}
	}
	return n, nil
}

type parser struct {
	src  string
	toks []token
	pos  int
	env  *Env
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) errorAt(col int, format string, args ...any) error {
	return &Error{Expr: p.src, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unexpected(t token) error {
	switch t.kind {
	case tokEOF:
		return p.errorAt(t.col, "unexpected end of expression")
	case tokBad:
		return p.errorAt(t.col, "unexpected symbol %q", t.text)
	}
	return p.errorAt(t.col, "unexpected token %q", t.text)
}

func (p *parser) expect(k tokenKind) error {
	if t := p.next(); t.kind != k {
		return p.unexpected(t)
	}
	return nil
}

// Precedence, loosest first: || , && , == != , < <= > >= , ! , then the
// postfix . [] and calls.
func (p *parser) or() (node, error)  { return p.logical("||", p.and) }
func (p *parser) and() (node, error) { return p.logical("&&", p.equality) }

func (p *parser) logical(op string, operand func() (node, error)) (node, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	ops := []node{first}
	for p.isOp(op) {
		p.next()
		n, err := operand()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	if len(ops) == 1 {
		return first, nil
	}
	return &logicalNode{and: op == "&&", ops: ops}, nil
}

func (p *parser) equality() (node, error) { return p.binary(p.comparison, "==", "!=") }
func (p *parser) comparison() (node, error) {
	return p.binary(p.unary, "<", "<=", ">", ">=")
}

// binary parses a left-associative chain: `3 < 2 < 1` is `(3 < 2) < 1`.
func (p *parser) binary(operand func() (node, error), ops ...string) (node, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for p.isOp(ops...) {
		op := p.next().text
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = &compareNode{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *parser) isOp(ops ...string) bool {
	t := p.peek()
	if t.kind != tokOp {
		return false
	}
	for _, op := range ops {
		if t.text == op {
			return true
		}
	}
	return false
}

func (p *parser) unary() (node, error) {
	if p.peek().kind != tokNot {
		return p.postfix()
	}
	p.next()
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	return &notNode{x: x}, nil
}

// postfix parses a primary value and the accessors after it. Literals take
// no accessors (GitHub rejects 'abc'[0]); groups and calls do.
func (p *parser) postfix() (node, error) {
	t := p.next()
	var n node
	var err error
	switch t.kind {
	case tokNull, tokBool, tokNum, tokStr:
		return &literal{v: t.val}, nil
	case tokIdent:
		if p.peek().kind == tokLParen {
			n, err = p.call(t)
		} else {
			n, err = p.context(t)
		}
	case tokLParen:
		if n, err = p.or(); err == nil {
			err = p.expect(tokRParen)
		}
	default:
		return nil, p.unexpected(t)
	}
	for err == nil {
		switch p.peek().kind {
		case tokDot:
			p.next()
			n, err = p.property(n)
		case tokLBracket:
			p.next()
			n, err = p.index(n)
		default:
			return n, nil
		}
	}
	return nil, err
}

func (p *parser) property(target node) (node, error) {
	t := p.next()
	switch t.kind {
	case tokStar:
		return &indexNode{target: target, star: true}, nil
	case tokIdent:
		return &indexNode{target: target, key: &literal{v: t.text}}, nil
	}
	return nil, p.unexpected(t)
}

func (p *parser) index(target node) (node, error) {
	if p.peek().kind == tokStar {
		p.next()
		return &indexNode{target: target, star: true}, p.expect(tokRBracket)
	}
	key, err := p.or()
	if err != nil {
		return nil, err
	}
	return &indexNode{target: target, key: key}, p.expect(tokRBracket)
}

func (p *parser) context(t token) (node, error) {
	if p.env != nil {
		if _, ok := lookupFold(p.env.Contexts, t.text); ok {
			return &contextRef{name: t.text}, nil
		}
	}
	return nil, p.errorAt(t.col, "unknown context %q", t.text)
}

func (p *parser) call(name token) (node, error) {
	fn, err := lookupFunction(name.text, p.env)
	if err != nil {
		return nil, p.errorAt(name.col, "%v", err)
	}
	p.next() // (
	var args []node
	for p.peek().kind != tokRParen {
		if len(args) > 0 {
			if err := p.expect(tokComma); err != nil {
				return nil, err
			}
		}
		a, err := p.or()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next() // )
	if err := fn.checkArity(len(args)); err != nil {
		return nil, p.errorAt(name.col, "%v", err)
	}
	return &callNode{fn: fn, args: args, src: p.src, col: name.col}, nil
}

// depth counts tree levels the way GitHub's limit does: the root is level
// 1 and parentheses add none.
func depth(n node) int {
	deepest := 0
	for _, c := range children(n) {
		deepest = max(deepest, depth(c))
	}
	return deepest + 1
}

func children(n node) []node {
	switch x := n.(type) {
	case *indexNode:
		if x.star {
			return []node{x.target}
		}
		return []node{x.target, x.key}
	case *notNode:
		return []node{x.x}
	case *compareNode:
		return []node{x.l, x.r}
	case *logicalNode:
		return x.ops
	case *callNode:
		return x.args
	case *concatNode:
		return x.parts
	}
	return nil
}

// callsAny reports whether the tree calls one of the named functions.
func callsAny(n node, names ...string) bool {
	if c, ok := n.(*callNode); ok {
		for _, name := range names {
			if c.fn.name == name {
				return true
			}
		}
	}
	for _, c := range children(n) {
		if callsAny(c, names...) {
			return true
		}
	}
	return false
}
