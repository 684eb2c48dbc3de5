package kdl

// Whitespace, comments and line continuations. The names follow the
// grammar: ws is spaces and block comments, node-space adds line
// continuations, line-space adds newlines and line comments.

// skipWS skips ws* and reports whether it skipped anything.
func (p *parser) skipWS() (bool, error) {
	start := p.pos
	for {
		switch {
		case isSpace(p.peek(0)):
			p.pos++
		case p.at("/*"):
			if err := p.blockComment(); err != nil {
				return false, err
			}
		default:
			return p.pos > start, nil
		}
	}
}

// blockComment skips a /* */ comment; they nest.
func (p *parser) blockComment() error {
	start, depth := p.pos, 0
	for !p.eof() {
		switch {
		case p.at("/*"):
			depth++
			p.pos += 2
		case p.at("*/"):
			depth--
			p.pos += 2
			if depth == 0 {
				return nil
			}
		default:
			p.pos++
		}
	}
	return p.errAt(start, "block comment is never closed")
}

// lineComment skips a // comment and the newline ending it.
func (p *parser) lineComment() {
	for !p.eof() && !p.newline() {
		p.pos++
	}
}

// newline consumes one newline (CR LF counts as one) if it is next.
func (p *parser) newline() bool {
	n := newlineLen(p.src, p.pos)
	p.pos += n
	return n > 0
}

// escline consumes a line continuation: `\`, ws*, then a line comment, a
// newline or the end of input.
func (p *parser) escline() error {
	start := p.pos
	p.pos++
	if _, err := p.skipWS(); err != nil {
		return err
	}
	switch {
	case p.at("//"):
		p.lineComment()
	case p.newline(), p.eof():
	default:
		return p.errAt(start, `line continuation "\" must be followed by a newline, found %s`, p.describe())
	}
	return nil
}

// skipNodeSpace skips node-space*: whitespace that does not end a node.
func (p *parser) skipNodeSpace() (bool, error) {
	start := p.pos
	for {
		if _, err := p.skipWS(); err != nil {
			return false, err
		}
		if p.peek(0) != '\\' {
			return p.pos > start, nil
		}
		if err := p.escline(); err != nil {
			return false, err
		}
	}
}

// skipLineSpace skips line-space*: whitespace, newlines and comments
// between nodes.
func (p *parser) skipLineSpace() error {
	for {
		if _, err := p.skipNodeSpace(); err != nil {
			return err
		}
		switch {
		case p.newline():
		case p.at("//"):
			p.lineComment()
		default:
			return nil
		}
	}
}
