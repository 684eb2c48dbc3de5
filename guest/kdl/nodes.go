package kdl

// nodes parses nodes up to the end of input or, in a children block, up
// to (not past) the closing "}".
func (p *parser) nodes(inBlock bool) ([]*Node, error) {
	var out []*Node
	for {
		if err := p.skipLineSpace(); err != nil {
			return nil, err
		}
		switch {
		case p.eof():
			return out, nil
		case p.peek(0) == '}':
			if inBlock {
				return out, nil
			}
			return nil, p.errAt(p.pos, `unexpected "}" outside a children block`)
		}
		n, err := p.node(inBlock)
		if err != nil {
			return nil, err
		}
		if n != nil {
			out = append(out, n)
		}
	}
}

// node parses one node and its terminator. A slashdashed node is parsed
// all the same (it must be valid) and then dropped: node returns nil.
func (p *parser) node(inBlock bool) (*Node, error) {
	dropped, err := p.slashdash("a node")
	if err != nil {
		return nil, err
	}
	n := &Node{Pos: p.posAt(p.pos)}
	if p.peek(0) == '(' {
		t, err := p.typeAnnotation()
		if err != nil {
			return nil, err
		}
		n.Type = &t
		if _, err := p.skipNodeSpace(); err != nil {
			return nil, err
		}
	}
	if n.Name, err = p.stringToken("a node name"); err != nil {
		return nil, err
	}
	if err := p.nodeBody(n, inBlock); err != nil {
		return nil, err
	}
	if dropped {
		return nil, nil
	}
	return n, nil
}

// slashdash consumes "/-" and the line-space after it, if present, and
// checks that something (what) follows for it to comment out.
func (p *parser) slashdash(what string) (bool, error) {
	if !p.at("/-") {
		return false, nil
	}
	start := p.pos
	p.pos += 2
	if err := p.skipLineSpace(); err != nil {
		return false, err
	}
	if c := p.peek(0); c < 0 || c == '}' || c == ';' || p.at("/-") {
		return false, p.errAt(start, `slashdash "/-" must be followed by %s, found %s`, what, p.describe())
	}
	return true, nil
}

// nodeBody parses a node's entries and children up to its terminator.
// Entries must be separated by whitespace (a slashdash also separates),
// come before any children block, and a node has at most one children
// block that is not slashdashed.
func (p *parser) nodeBody(n *Node, inBlock bool) error {
	var sawBlock, sawLiveBlock bool
	for {
		spaced, err := p.skipNodeSpace()
		if err != nil {
			return err
		}
		if done, err := p.nodeEnd(inBlock); done || err != nil {
			return err
		}
		switch c := p.peek(0); {
		case c == '{':
			if sawLiveBlock {
				return p.errAt(p.pos, "node %q already has a children block", n.Name)
			}
			if n.Children, err = p.children(); err != nil {
				return err
			}
			sawBlock, sawLiveBlock = true, true
		case p.at("/-"):
			if err := p.droppedEntry(&sawBlock); err != nil {
				return err
			}
		case c == '=':
			return p.errAt(p.pos, `unexpected "=": a property name must be a string`)
		case !startsValue(c):
			return p.errAt(p.pos, "unexpected %s", p.describe())
		case sawBlock:
			return p.errAt(p.pos, "arguments and properties must come before the children block")
		case !spaced:
			return p.errAt(p.pos, "missing whitespace before %s", p.describe())
		default:
			if err := p.entry(n); err != nil {
				return err
			}
		}
	}
}

// nodeEnd consumes a node terminator if one is next. A "}" ends the last
// node of a children block but is left for the block to consume.
func (p *parser) nodeEnd(inBlock bool) (bool, error) {
	switch {
	case p.eof(), p.newline():
	case p.peek(0) == ';':
		p.pos++
	case p.at("//"):
		p.lineComment()
	case p.peek(0) == '}':
		if !inBlock {
			return true, p.errAt(p.pos, `unexpected "}" outside a children block`)
		}
	default:
		return false, nil
	}
	return true, nil
}

// droppedEntry parses a slashdashed entry or children block and throws it
// away. It records a children block in sawBlock, since entries may not
// follow one even when it is commented out.
func (p *parser) droppedEntry(sawBlock *bool) error {
	if _, err := p.slashdash("an argument, property or children block"); err != nil {
		return err
	}
	if p.peek(0) == '{' {
		*sawBlock = true
		_, err := p.children()
		return err
	}
	if *sawBlock {
		return p.errAt(p.pos, "arguments and properties must come before the children block")
	}
	if !startsValue(p.peek(0)) {
		return p.errAt(p.pos, "unexpected %s after slashdash", p.describe())
	}
	return p.entry(&Node{})
}

// maxDepth bounds children-block nesting. The spec has no limit, but the
// parser recurses per level and a hostile document must not exhaust the
// stack.
const maxDepth = 1000

// children parses a { } block.
func (p *parser) children() ([]*Node, error) {
	open := p.pos
	if p.depth++; p.depth > maxDepth {
		return nil, p.errAt(open, "children blocks nested more than %d deep", maxDepth)
	}
	defer func() { p.depth-- }()
	p.pos++
	kids, err := p.nodes(true)
	if err != nil {
		return nil, err
	}
	if p.eof() {
		return nil, p.errAt(open, `children block is never closed (missing "}")`)
	}
	p.pos++
	return kids, nil
}

// entry parses an argument or property into n.
func (p *parser) entry(n *Node) error {
	typed := p.peek(0) == '('
	v, err := p.value("")
	if err != nil || v.Kind != KindString {
		n.Args = append(n.Args, v)
		return err
	}
	eq, err := p.equalsNext()
	switch {
	case err != nil:
		return err
	case !eq:
		n.Args = append(n.Args, v)
		return nil
	case typed:
		return p.errAt(p.pos-1, `unexpected "=": a property name cannot have a type annotation (write %s=(type)value)`, quoteIfNeeded(v.str))
	}
	if _, err := p.skipNodeSpace(); err != nil {
		return err
	}
	pv, err := p.value(`after "="`)
	if err != nil {
		return err
	}
	n.setProp(Prop{Name: v.str, Value: pv, Pos: v.Pos})
	return nil
}

// equalsNext consumes node-space and "=" if "=" is next; otherwise it
// consumes nothing.
func (p *parser) equalsNext() (bool, error) {
	save := p.pos
	if _, err := p.skipNodeSpace(); err != nil {
		return false, err
	}
	if p.peek(0) == '=' {
		p.pos++
		return true, nil
	}
	p.pos = save
	return false, nil
}

// value parses an optionally annotated value. context completes "expected
// a value ..." in errors.
func (p *parser) value(context string) (Value, error) {
	start := p.pos
	var typ *string
	if p.peek(0) == '(' {
		t, err := p.typeAnnotation()
		if err != nil {
			return Value{}, err
		}
		typ = &t
		if _, err := p.skipNodeSpace(); err != nil {
			return Value{}, err
		}
		context = "after the type annotation"
	}
	v, err := p.plainValue(context)
	v.Type, v.Pos = typ, p.posAt(start)
	return v, err
}

// typeAnnotation parses "(" string ")", allowing whitespace and comments
// inside.
func (p *parser) typeAnnotation() (string, error) {
	p.pos++
	if _, err := p.skipNodeSpace(); err != nil {
		return "", err
	}
	t, err := p.stringToken("a type name")
	if err != nil {
		return "", err
	}
	if _, err := p.skipNodeSpace(); err != nil {
		return "", err
	}
	if p.peek(0) != ')' {
		return "", p.errAt(p.pos, `expected ")" to close the type annotation, found %s`, p.describe())
	}
	p.pos++
	return t, nil
}

// stringToken parses a string where only a string may stand: a node name
// or a type name. what names it in errors.
func (p *parser) stringToken(what string) (string, error) {
	start := p.pos
	if !startsValue(p.peek(0)) || p.peek(0) == '(' {
		return "", p.errAt(p.pos, "expected %s, found %s", what, p.describe())
	}
	v, err := p.plainValue("")
	if err != nil {
		return "", err
	}
	if v.Kind != KindString {
		return "", p.errAt(start, "%s must be a string, found %s %s (quote it)", what, v.Kind, v)
	}
	return v.str, nil
}

// startsValue reports whether c can begin a value or its annotation.
func startsValue(c rune) bool {
	return c == '"' || c == '#' || c == '(' || isIdentChar(c)
}
